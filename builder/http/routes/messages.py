"""A project's conversation: page through it, append to it, clear it."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from builder.http.deps import DbDep, OwnedProject
from builder.http.errors import ERROR_RESPONSES
from builder.http.ratelimit import rate_limited
from builder.http.schemas import ClearedMessages, MessageAppendBody
from builder.persistence.messages import append_messages, clear_messages, list_messages
from builder.persistence.schemas import MessageCreate, MessagePublic, Page

router = APIRouter(
    prefix="/api/projects/{project_id}/messages",
    tags=["messages"],
    dependencies=[Depends(rate_limited("default"))],
    responses=ERROR_RESPONSES,
)


@router.get("", response_model=Page[MessagePublic])
async def list_(
    project: OwnedProject,
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    order: Annotated[Literal["asc", "desc"], Query(description="`desc`: newest first.")] = "asc",
) -> object:
    """One page of the conversation, oldest first (or newest first with ``order=desc``)."""
    return await list_messages(
        db, project_id=project.id, limit=limit, cursor=cursor, newest_first=order == "desc"
    )


@router.post("", status_code=201, response_model=MessagePublic)
async def append(project: OwnedProject, body: MessageAppendBody, db: DbDep) -> MessagePublic:
    """Add a message to the conversation (chat adds the agent's own)."""
    message = MessageCreate(role=body.role, content=body.content, parts=list(body.parts))
    (stored,) = await append_messages(db, project_id=project.id, messages=[message])
    return stored


@router.delete("", response_model=ClearedMessages)
async def clear(project: OwnedProject, db: DbDep) -> ClearedMessages:
    """Delete every message of the project."""
    return ClearedMessages(deleted=await clear_messages(db, project_id=project.id))
