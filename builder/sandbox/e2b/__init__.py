"""The E2B sandbox backend: the project in an E2B cloud sandbox (:mod:`.sandbox`).

Commands and long-running processes are in :mod:`.processes`; the mapping of the
SDK's errors onto builder's is in :mod:`.errors`.
"""

from __future__ import annotations

from builder.sandbox.e2b.sandbox import E2B_ROOT, E2BSandbox, check_e2b_access

__all__ = ["E2B_ROOT", "E2BSandbox", "check_e2b_access"]
