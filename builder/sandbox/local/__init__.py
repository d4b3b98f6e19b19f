"""The local sandbox backends: a workspace directory per project on this host.

``local`` confines every command with bubblewrap (:mod:`.confine`) wherever it works;
``local-unconfined`` (development only) runs commands as plain child processes
(:mod:`.processes`, :mod:`.servers`).
"""

from __future__ import annotations

from builder.sandbox.local.sandbox import LocalSandbox, confinement_wanted, workspace_path

__all__ = ["LocalSandbox", "confinement_wanted", "workspace_path"]
