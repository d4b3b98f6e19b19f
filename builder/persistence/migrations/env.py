"""Alembic environment: builder's metadata, configured from code, not alembic.ini.

:func:`builder.persistence.migrations.upgrade_database` passes an open connection in
``config.attributes["connection"]``; offline mode (``--sql``) uses the URL in the
``sqlalchemy.url`` option.
"""

from __future__ import annotations

from typing import Any

from alembic import context

from builder.errors import ConfigurationError
from builder.persistence.migrations import include_object
from builder.persistence.models import metadata

config = context.config
options: dict[str, Any] = {
    "target_metadata": metadata,
    "include_object": include_object,
    "compare_server_default": True,
    "compare_type": True,
}

if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, **options)
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is None:
        raise ConfigurationError(
            "run migrations with `builder db upgrade` or builder.upgrade_database(), "
            "which pass the connection in"
        )
    context.configure(connection=connection, **options)
    with context.begin_transaction():
        context.run_migrations()
