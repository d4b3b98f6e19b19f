"""A project's conversation: append, page through, clear.

Messages are ordered by a database sequence, so the order is stable even for messages
appended in one transaction, and pages never skip or repeat a message when new ones
arrive between two requests.

Images attached to a message are content-addressed blobs (the same ``blobs`` table
as snapshot files, stored once however often they are sent); the message's ``parts``
name them: ``{"type": "image", "media_type", "sha256", "size"}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from builder.errors import InvalidInput
from builder.persistence.cursors import decode_cursor, encode_cursor
from builder.persistence.database import Database
from builder.persistence.repositories import messages as repo
from builder.persistence.repositories import snapshots as blobs_repo
from builder.persistence.schemas import MessageCreate, MessagePublic, Page

if TYPE_CHECKING:
    from builder.images import Image

__all__ = [
    "append_message",
    "append_messages",
    "clear_messages",
    "image_part",
    "latest_message",
    "list_messages",
    "load_images",
    "message_images",
    "messages_scope",
    "store_images",
]

_CURSOR = "messages"


def messages_scope(project_id: uuid.UUID) -> str:
    """The cache scope of a project's message pages."""
    return f"project:{project_id}:messages"


async def append_messages(
    db: Database,
    *,
    project_id: uuid.UUID,
    messages: Sequence[MessageCreate],
    blobs: dict[str, bytes] | None = None,
) -> list[MessagePublic]:
    """Append several messages in one transaction, in order.

    Args:
        db: The database.
        project_id: The project.
        messages: The messages.
        blobs: Contents by SHA-256 that the messages' parts refer to (images).

    Raises:
        NotFound: No such project.
    """
    if not messages:
        return []
    rows = [message.model_dump() for message in messages]

    async def work(session: AsyncSession) -> Any:
        if blobs:
            await blobs_repo.insert_blobs(session, contents=blobs)
        return await repo.insert_messages(session, project_id=project_id, rows=rows)

    stored = [MessagePublic.model_validate(row) for row in await db.run(work)]
    if db.cache is not None:
        await db.cache.invalidate(messages_scope(project_id))
    return stored


async def append_message(
    db: Database,
    *,
    project_id: uuid.UUID,
    role: str,
    content: str = "",
    parts: list[Any] | None = None,
    model: str | None = None,
    images: Sequence[Image] = (),
) -> MessagePublic:
    """Append one message.

    ``images`` are stored as blobs and named in the message's parts, after ``parts``.

    Raises:
        InvalidInput: An unknown role.
        NotFound: No such project.
    """
    image_parts = [image_part(i) for i in images]
    try:
        message = MessageCreate.model_validate(
            {
                "role": role,
                "content": content,
                "parts": [*(parts or []), *image_parts],
                "model": model,
            }
        )
    except ValidationError as exc:
        raise InvalidInput(f"invalid message: {exc.errors()[0]['msg']}") from None
    (stored,) = await append_messages(
        db,
        project_id=project_id,
        messages=[message],
        blobs={i.sha256: i.data for i in images},
    )
    return stored


def image_part(image: Image) -> dict[str, Any]:
    """How a message's (or a queued run's) parts name an image stored as a blob."""
    return {
        "type": "image",
        "media_type": image.media_type,
        "sha256": image.sha256,
        "size": len(image.data),
    }


async def store_images(db: Database, images: Sequence[Image]) -> list[dict[str, Any]]:
    """Store images as blobs ahead of their message (a run queued for a worker
    elsewhere carries only these parts); returns their parts (:func:`image_part`)."""
    if not images:
        return []
    contents = {image.sha256: image.data for image in images}

    async def work(session: AsyncSession) -> None:
        await blobs_repo.insert_blobs(session, contents=contents)

    await db.run(work)
    return [image_part(image) for image in images]


async def load_images(db: Database, parts: Sequence[dict[str, Any]]) -> list[Image]:
    """The images that parts name (:func:`image_part`), in order; one query."""
    from builder.images import Image

    wanted = [part for part in parts if part.get("type") == "image" and part.get("sha256")]
    if not wanted:
        return []
    shas = {str(part["sha256"]) for part in wanted}

    async def work(session: AsyncSession) -> dict[str, bytes]:
        return await blobs_repo.blob_data(session, shas=shas)

    data = await db.run(work)
    return [
        Image(str(part["media_type"]), data[str(part["sha256"])])
        for part in wanted
        if str(part["sha256"]) in data
    ]


async def message_images(
    db: Database, messages: Iterable[MessagePublic]
) -> dict[uuid.UUID, list[Image]]:
    """The images of these messages, in order, by message id (one query for all).

    Messages without images are left out.
    """
    from builder.images import Image

    wanted = {
        message.id: [
            part
            for part in message.parts
            if isinstance(part, dict) and part.get("type") == "image" and part.get("sha256")
        ]
        for message in messages
    }
    wanted = {key: parts for key, parts in wanted.items() if parts}
    if not wanted:
        return {}
    shas = {str(part["sha256"]) for parts in wanted.values() for part in parts}

    async def work(session: AsyncSession) -> dict[str, bytes]:
        return await blobs_repo.blob_data(session, shas=shas)

    data = await db.run(work)
    return {
        key: [
            Image(str(part["media_type"]), data[str(part["sha256"])])
            for part in parts
            if str(part["sha256"]) in data
        ]
        for key, parts in wanted.items()
    }


async def list_messages(
    db: Database,
    *,
    project_id: uuid.UUID,
    limit: int = 50,
    cursor: str | None = None,
    newest_first: bool = False,
) -> Page[MessagePublic]:
    """One page of a project's messages.

    Args:
        db: The database.
        project_id: Whose messages (check the caller may see the project first).
        limit: Most messages on the page (1-500).
        cursor: ``next_cursor`` of the previous page; None for the first page.
        newest_first: Page from the latest message backwards (a chat view) instead
            of from the first forwards (replaying a conversation).

    Raises:
        InvalidInput: A malformed cursor, or one made for the other direction.
    """
    limit = max(1, min(limit, 500))
    kind = f"{_CURSOR}:{'desc' if newest_first else 'asc'}"
    after_seq = None
    if cursor is not None:
        (after_seq,) = decode_cursor(kind, cursor, size=1)
    lookup = None
    if db.cache is not None:
        lookup = await db.cache.lookup(
            "messages",
            f"{project_id}:{kind}:{limit}:{cursor or ''}",
            scopes=[messages_scope(project_id)],
        )
        if lookup.hit:
            return Page[MessagePublic].model_validate(lookup.value)

    async def work(session: AsyncSession) -> Any:
        return await repo.messages_page(
            session,
            project_id=project_id,
            limit=limit + 1,
            after_seq=int(after_seq) if after_seq is not None else None,
            newest_first=newest_first,
        )

    rows = await db.run(work)
    items = [MessagePublic.model_validate(row) for row in rows[:limit]]
    next_cursor = encode_cursor(kind, rows[limit - 1].seq) if len(rows) > limit else None
    page = Page[MessagePublic](items=items, next_cursor=next_cursor)
    if db.cache is not None and lookup is not None:
        await db.cache.store(lookup, page.model_dump(mode="json"))
    return page


async def latest_message(db: Database, *, project_id: uuid.UUID) -> MessagePublic | None:
    """A project's latest message, read from the database (not the page cache: a run
    asks once, just before the conversation changes)."""

    async def work(session: AsyncSession) -> Any:
        return await repo.messages_page(
            session, project_id=project_id, limit=1, after_seq=None, newest_first=True
        )

    rows = await db.run(work)
    return MessagePublic.model_validate(rows[0]) if rows else None


async def clear_messages(db: Database, *, project_id: uuid.UUID) -> int:
    """Delete every message of a project; returns how many there were."""

    async def work(session: AsyncSession) -> int:
        return await repo.delete_messages(session, project_id=project_id)

    count = await db.run(work)
    if db.cache is not None:
        await db.cache.invalidate(messages_scope(project_id))
    return count
