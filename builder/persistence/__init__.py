"""Persistence: PostgreSQL schema and migrations, file snapshots, and the services.

Every service takes a :class:`Database` first and keyword-only arguments after it::

    db = Database.from_settings()
    await upgrade_database(db)
    user = await get_or_create_user(db, name="local")
    project = await create_project(db, user_id=user.id, name="Bakery")
    await save_snapshot(db, project_id=project.id, changes={"index.html": b"<h1>Hi</h1>"})

Layers: services (these modules) own transactions, errors and the cache;
:mod:`builder.persistence.repositories` hold the SQL; :mod:`builder.persistence.models`
the tables; :mod:`builder.persistence.schemas` what callers send and get back.
"""

from __future__ import annotations

from builder.persistence.database import Database
from builder.persistence.files import diff_snapshots, restore_snapshot
from builder.persistence.integrations import (
    delete_integration,
    get_integration_tokens,
    list_integrations,
    reencrypt_all,
    refresh_integration_tokens,
    store_integration,
)
from builder.persistence.messages import (
    append_message,
    append_messages,
    clear_messages,
    list_messages,
)
from builder.persistence.migrations import current_revision, head_revision, upgrade_database
from builder.persistence.projects import (
    create_project,
    delete_project,
    get_project,
    list_projects,
    open_project,
    set_starred,
    update_project,
)
from builder.persistence.snapshots import (
    get_snapshot,
    list_snapshots,
    read_file,
    save_snapshot,
    tree,
)
from builder.persistence.usage import project_usage, record_usage, run_usage
from builder.persistence.users import (
    authenticate_api_key,
    create_api_key,
    get_or_create_user,
    get_user,
    list_api_keys,
    revoke_api_key,
)

__all__ = [
    "Database",
    "append_message",
    "append_messages",
    "authenticate_api_key",
    "clear_messages",
    "create_api_key",
    "create_project",
    "current_revision",
    "delete_integration",
    "delete_project",
    "diff_snapshots",
    "get_integration_tokens",
    "get_or_create_user",
    "get_project",
    "get_snapshot",
    "get_user",
    "head_revision",
    "list_api_keys",
    "list_integrations",
    "list_messages",
    "list_projects",
    "list_snapshots",
    "open_project",
    "project_usage",
    "read_file",
    "record_usage",
    "reencrypt_all",
    "refresh_integration_tokens",
    "restore_snapshot",
    "revoke_api_key",
    "run_usage",
    "save_snapshot",
    "set_starred",
    "store_integration",
    "tree",
    "update_project",
    "upgrade_database",
]
