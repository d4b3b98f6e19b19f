"""Threads: a user's projects, as LangGraph threads.

A thread *is* a project's conversation: its id is the project's id, so every project
is a thread and creating a thread creates a project (named by ``metadata.name`` when
given). A client-chosen ``thread_id`` must be a UUID. Another user's thread answers
404, exactly like one that does not exist. ``ttl`` (minutes, as the SDK sends it) is
how long the thread's context lives after its last use; the project itself never
expires. Deleting a thread deletes the project.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from builder.errors import AlreadyExists, InvalidInput, NotFound, RunInProgress
from builder.http.deps import CurrentUser, DbDep, ServicesDep
from builder.http.errors import ERROR_RESPONSES
from builder.http.langgraph.contexts import current_values
from builder.http.langgraph.schemas import (
    ThreadCountBody,
    ThreadCreateBody,
    ThreadPatchBody,
    ThreadSearchBody,
)
from builder.http.langgraph.serialize import thread_json
from builder.http.ratelimit import rate_limited
from builder.http.services import Services
from builder.persistence.database import Database
from builder.persistence.projects import delete_project
from builder.persistence.runs import (
    count_threads,
    create_thread,
    get_thread,
    search_threads,
    update_thread,
)
from builder.persistence.schemas import UserPublic
from builder.starters import starter_version

__all__ = ["create_owned_thread", "delete_owned_thread", "owned_thread", "router"]

_DEFAULT_NAME = "Untitled thread"
_NAME_MAX = 200

router = APIRouter(
    prefix="/threads",
    tags=["langgraph: threads"],
    dependencies=[Depends(rate_limited("default"))],
    responses=ERROR_RESPONSES,
)


def _uuid(thread_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(thread_id)
    except ValueError:
        return None


async def owned_thread(db: Database, user: UserPublic, thread_id: str) -> dict[str, Any]:
    """The caller's thread.

    Raises:
        NotFound: No such thread for this user (another user's included).
    """
    parsed = _uuid(thread_id)
    row = await get_thread(db, user_id=user.id, thread_id=parsed) if parsed else None
    if row is None:
        raise NotFound("thread", thread_id)
    return row


async def create_owned_thread(
    db: Database,
    user: UserPublic,
    *,
    thread_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    ttl_seconds: int | None = None,
) -> dict[str, Any]:
    """Create a thread (and its project) for the caller.

    Raises:
        InvalidInput: ``thread_id`` is not a UUID.
        AlreadyExists: The id is taken.
    """
    parsed = None
    if thread_id is not None:
        parsed = _uuid(thread_id)
        if parsed is None:
            raise InvalidInput("thread_id must be a UUID: it becomes the project's id")
    name = (metadata or {}).get("name")
    name = name.strip()[:_NAME_MAX] if isinstance(name, str) and name.strip() else _DEFAULT_NAME
    starter = (metadata or {}).get("starter")
    files: dict[str, bytes] = {}
    summary = ""
    if starter is not None:
        if not isinstance(starter, str):
            raise InvalidInput("metadata.starter must be a starter's name")
        files, summary = starter_version(starter, db.settings)
    try:
        return await create_thread(
            db,
            user_id=user.id,
            name=name,
            thread_id=parsed,
            metadata=metadata,
            ttl_seconds=ttl_seconds,
            files=files,
            files_summary=summary,
        )
    except AlreadyExists:
        raise AlreadyExists(f"thread {thread_id} already exists") from None


async def delete_owned_thread(services: Services, user: UserPublic, project_id: uuid.UUID) -> None:
    """Delete a thread: its context, and its project with everything in it.

    Raises:
        RunInProgress: A run is in progress on it.
    """
    async with services.runs.project_idle(project_id, queued_too=True) as held:
        if not held:
            raise RunInProgress(project_id)
        await services.runs.delete_context(project_id)
        await delete_project(services.db, user_id=user.id, project_id=project_id)
    await services.runs.workspaces.discard(str(project_id))


def _refuse_values_filter(values: dict[str, Any] | None) -> None:
    if values:
        raise InvalidInput(
            "filtering threads by state values is not supported; filter by metadata "
            "(which runs and clients can set) instead"
        )


@router.post("")
async def create(body: ThreadCreateBody, user: CurrentUser, db: DbDep) -> dict[str, Any]:
    """Create a thread (a new project), or return it with ``if_exists: do_nothing``."""
    if body.supersteps:
        raise InvalidInput(
            "supersteps are not supported: a thread's state comes from its runs; "
            "create the thread, then update its state"
        )
    if body.thread_id is not None and body.if_exists == "do_nothing":
        parsed = _uuid(body.thread_id)
        existing = await get_thread(db, user_id=user.id, thread_id=parsed) if parsed else None
        if existing is not None:
            return thread_json(existing)
    row = await create_owned_thread(
        db,
        user,
        thread_id=body.thread_id,
        metadata=body.metadata,
        ttl_seconds=body.ttl.seconds if body.ttl else None,
    )
    return thread_json(row)


@router.post("/search")
async def search(
    body: ThreadSearchBody, user: CurrentUser, services: ServicesDep
) -> list[dict[str, Any]]:
    """The caller's threads whose metadata contains ``metadata``, newest first, with their
    current values (unless ``select`` leaves them out)."""
    _refuse_values_filter(body.values)
    if body.extract:
        raise InvalidInput("extract is not supported; read a thread's state instead")
    ids = None
    if body.ids is not None:
        ids = [parsed for parsed in map(_uuid, body.ids) if parsed is not None]
    sort_by = "updated_at" if body.sort_by == "state_updated_at" else body.sort_by
    rows = await search_threads(
        services.db,
        user_id=user.id,
        metadata=body.metadata,
        status=body.status,
        ids=ids,
        limit=body.limit,
        offset=body.offset,
        sort_by=sort_by or "created_at",
        sort_order=body.sort_order or "desc",
    )
    # Each thread's values, as the official server returns them (agent-chat-ui names
    # its history entries by their first message); a `select` without them skips the
    # checkpoint reads.
    with_values = body.select is None or "values" in body.select
    threads = [
        thread_json(row, values=await current_values(services, row["thread_id"]))
        if with_values
        else thread_json(row)
        for row in rows
    ]
    if body.select:
        threads = [{key: t[key] for key in body.select if key in t} for t in threads]
    return threads


@router.post("/count")
async def count(body: ThreadCountBody, user: CurrentUser, db: DbDep) -> int:
    """How many of the caller's threads match."""
    _refuse_values_filter(body.values)
    return await count_threads(db, user_id=user.id, metadata=body.metadata, status=body.status)


@router.get("/{thread_id}")
async def get(
    thread_id: str,
    user: CurrentUser,
    services: ServicesDep,
    include: Annotated[list[str] | None, Query(description="Accepted and ignored.")] = None,
) -> dict[str, Any]:
    """One thread, with its current values."""
    row = await owned_thread(services.db, user, thread_id)
    return thread_json(row, values=await current_values(services, row["thread_id"]))


@router.patch("/{thread_id}")
async def patch(
    thread_id: str, body: ThreadPatchBody, user: CurrentUser, services: ServicesDep
) -> dict[str, Any]:
    """Merge metadata into the thread and set its TTL."""
    row = await owned_thread(services.db, user, thread_id)
    updated = await update_thread(
        services.db,
        user_id=user.id,
        thread_id=row["project_id"],
        metadata=body.metadata,
        ttl_seconds=body.ttl.seconds if body.ttl else None,
    )
    if updated is None:  # deleted in between
        raise NotFound("thread", thread_id)
    return thread_json(updated, values=await current_values(services, row["thread_id"]))


@router.delete("/{thread_id}", status_code=204)
async def delete(thread_id: str, user: CurrentUser, services: ServicesDep) -> Response:
    """Delete the thread and its project (409 while a run is in progress)."""
    row = await owned_thread(services.db, user, thread_id)
    await delete_owned_thread(services, user, row["project_id"])
    return Response(status_code=204)
