"""A file source as a zip or a gzipped tar, streamed file by file.

The archive is written to a sink that is drained after each file, so memory holds one
file's content (and its compressed form) at a time, never the whole project. Entries
have a fixed timestamp and mode, so the same files give the same archive bytes.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import uuid
import zipfile
from collections.abc import AsyncIterator
from typing import Literal

from builder.persistence.database import Database
from builder.publish.source import FileSource, VersionFiles, iter_files

__all__ = ["FORMATS", "ArchiveFormat", "archive_chunks", "zip_chunks"]

ArchiveFormat = Literal["zip", "tar.gz"]
FORMATS: dict[str, tuple[str, str]] = {
    "zip": ("application/zip", ".zip"),
    "tar.gz": ("application/gzip", ".tar.gz"),
}
"""Each archive format's media type and file extension."""

# 1980-01-01: the earliest time a zip can hold; tar gets the same moment.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_EPOCH_SECONDS = 315_532_800


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


async def _zip(files: FileSource) -> AsyncIterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:  # type: ignore[call-overload]
        async for path, data in iter_files(files):
            info = zipfile.ZipInfo(path, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
            del data
            yield sink.drain()
    yield sink.drain()


async def _tar_gz(files: FileSource) -> AsyncIterator[bytes]:
    sink = _Sink()
    # mtime=0 in the gzip header and fixed tar headers keep the bytes reproducible.
    with (
        gzip.GzipFile(fileobj=sink, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w|", format=tarfile.PAX_FORMAT) as archive,
    ):
        async for path, data in iter_files(files):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = _EPOCH_SECONDS
            archive.addfile(info, io.BytesIO(data))
            del data
            yield sink.drain()
    yield sink.drain()


def archive_chunks(files: FileSource, *, format: ArchiveFormat = "zip") -> AsyncIterator[bytes]:
    """The archive of ``files`` in chunks of about one file each.

    Raises:
        Whatever reading ``files`` raises (a missing version before the first chunk).
    """
    return _zip(files) if format == "zip" else _tar_gz(files)


def zip_chunks(
    db: Database, *, project_id: uuid.UUID, version: int | None = None
) -> AsyncIterator[bytes]:
    """The zip of one stored version (the latest for None), in chunks of about one file.

    Raises:
        NotFound: No such version (before the first chunk).
    """
    return _zip(VersionFiles(db, project_id=project_id, version=version))
