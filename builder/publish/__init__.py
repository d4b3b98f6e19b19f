"""Ways a project version leaves builder: archives (and, later, git pushes and hosts)."""

from __future__ import annotations

from builder.publish.archive import zip_chunks

__all__ = ["zip_chunks"]
