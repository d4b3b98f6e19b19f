"""A version's files as a zip, streamed blob by blob.

The archive is written to a sink that is drained after each file, so memory holds one
file's content (and its compressed form) at a time, never the whole project.
"""

from __future__ import annotations

import uuid
import zipfile
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession

from builder.persistence.database import Database
from builder.persistence.repositories import snapshots as repo
from builder.persistence.snapshots import tree

__all__ = ["zip_chunks"]

# 1980-01-01: a fixed timestamp makes the same version give the same archive bytes.
_EPOCH = (1980, 1, 1, 0, 0, 0)


class _Sink:
    """A write-only, unseekable stream whose bytes are taken out after each file."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: the parts are taken by :meth:`drain`."""

    def drain(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


async def zip_chunks(
    db: Database, *, project_id: uuid.UUID, version: int | None = None
) -> AsyncIterator[bytes]:
    """The zip of one version, in chunks of about one file each.

    Args:
        db: The database.
        project_id: The project.
        version: A version number; None for the latest.

    Raises:
        NotFound: No such version (before the first chunk).
    """
    files = await tree(db, project_id=project_id, version=version)
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:  # type: ignore[call-overload]
        for path, entry in files.items():

            async def work(session: AsyncSession, sha: str = entry.sha256) -> bytes:
                return (await repo.blob_data(session, shas=[sha]))[sha]

            data = await db.run(work)
            info = zipfile.ZipInfo(path, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
            del data
            yield sink.drain()
    yield sink.drain()
