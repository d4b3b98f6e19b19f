"""SQL for each table, one module per noun.

Repositories take an open session (inside the caller's transaction) and keyword-only
arguments, select explicit columns, and return rows or plain values. They neither
commit nor translate errors: the services above them own the transaction
(:meth:`builder.persistence.database.Database.run`) and the cache.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from sqlalchemy import Row

AnyRow: TypeAlias = Row[*tuple[Any, ...]]
"""A result row of any shape (columns are read by name)."""
