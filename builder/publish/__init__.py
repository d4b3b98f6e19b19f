"""Ways a project version leaves builder: archives, git pushes and static hosts."""

from __future__ import annotations

from builder.publish.archive import archive_chunks, zip_chunks
from builder.publish.source import FileSource, SandboxFiles, VersionFiles

__all__ = ["FileSource", "SandboxFiles", "VersionFiles", "archive_chunks", "zip_chunks"]
