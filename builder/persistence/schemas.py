"""What the persistence services accept and return.

Separate from the tables (:mod:`builder.persistence.models`) so callers — the HTTP
layer above all — never see or accept a column they shouldn't: a project list item has
no description or dependencies, an integration read for display has no tokens, an API
key is shown in plaintext exactly once (:class:`NewApiKey`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

__all__ = [
    "ApiKeyPublic",
    "FileEntry",
    "IntegrationPublic",
    "IntegrationTokens",
    "MessageCreate",
    "MessagePublic",
    "MessageRole",
    "NewApiKey",
    "Page",
    "ProjectCreate",
    "ProjectPublic",
    "ProjectSummary",
    "ProjectUpdate",
    "PublicationPublic",
    "PublishTargetPublic",
    "SnapshotDiff",
    "SnapshotPublic",
    "UsageTotals",
    "UserPublic",
]

T = TypeVar("T")
MessageRole = Literal["user", "assistant", "system", "tool"]


class _Read(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class Page(BaseModel, Generic[T]):
    """One page of a listing and the opaque cursor of the next (None on the last page)."""

    items: list[T]
    next_cursor: str | None = None


class UserPublic(_Read):
    """A user as the API shows it."""

    id: uuid.UUID
    name: str
    created_at: datetime


class ApiKeyPublic(_Read):
    """An API key's metadata; the key itself is never stored or shown again."""

    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    prefix: str
    """The first characters of the key, so a person can tell keys apart."""
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewApiKey(_Read):
    """A freshly created API key: the only time the plaintext is available."""

    key: SecretStr
    info: ApiKeyPublic


class ProjectBase(BaseModel):
    """Fields a caller may set when creating a project."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)


class ProjectCreate(ProjectBase):
    """A new project."""


class ProjectUpdate(BaseModel):
    """Fields a caller may change; unset fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    sandbox_id: str | None = None
    sandbox_url: str | None = None
    dependencies: dict[str, Any] | None = None


class ProjectSummary(_Read):
    """A project as listed: no large columns."""

    id: uuid.UUID
    name: str
    starred: bool
    created_at: datetime
    updated_at: datetime
    last_opened_at: datetime | None


class ProjectPublic(ProjectSummary):
    """A project with every field the API shows."""

    user_id: uuid.UUID
    description: str
    sandbox_id: str | None
    sandbox_url: str | None
    dependencies: dict[str, Any]


class MessageCreate(BaseModel):
    """A message to append to a project's conversation."""

    role: MessageRole
    content: str = ""
    parts: list[Any] = Field(default_factory=list)
    """Structured parts (tool calls, tool results, images) as JSON."""
    model: str | None = None


class MessagePublic(_Read):
    """A stored message."""

    id: uuid.UUID
    project_id: uuid.UUID
    role: MessageRole
    content: str
    parts: list[Any]
    model: str | None
    created_at: datetime


class FileEntry(NamedTuple):
    """A file of a snapshot tree: the SHA-256 of its content and its size in bytes."""

    sha256: str
    size: int


class SnapshotPublic(_Read):
    """One version of a project's files."""

    id: uuid.UUID
    project_id: uuid.UUID
    version: int
    parent_version: int | None
    message_id: uuid.UUID | None
    run_id: str | None
    summary: str
    file_count: int
    total_bytes: int
    changed_paths: int
    """How many paths this version added, changed or deleted."""
    created_at: datetime


class SnapshotDiff(_Read):
    """What changed between two versions."""

    from_version: int
    to_version: int
    added: list[str]
    removed: list[str]
    modified: list[str]
    patch: str
    """A unified diff of the text files, bounded in size."""
    truncated: bool
    """True when ``patch`` was cut to stay within its bound or skipped binary files."""


class UsageTotals(_Read):
    """Summed token usage."""

    calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: Decimal


class IntegrationPublic(_Read):
    """An integration as shown to its owner: no tokens."""

    id: uuid.UUID
    user_id: uuid.UUID
    provider: str
    key_id: str
    expires_at: datetime | None
    scope: str | None
    created_at: datetime
    updated_at: datetime


class PublishTargetPublic(_Read):
    """Where a project is published with one publisher; never its credential."""

    publisher: str
    config: dict[str, Any]
    """The publisher's settings (remote URL and branch, repository, site id)."""
    has_credentials: bool
    """Whether a credential is stored (encrypted) for this target."""
    updated_at: datetime


class PublicationPublic(_Read):
    """One push or deploy of a version: how it went and where it can be seen."""

    id: uuid.UUID
    project_id: uuid.UUID
    publisher: str
    version: int
    status: Literal["running", "ready", "error"]
    url: str | None
    """The repository or site (for a deploy: the deploy's own URL is in ``detail``)."""
    detail: dict[str, Any]
    """What the publisher reports: a commit and branch, a deploy id, files uploaded."""
    error: str | None
    """What failed, for ``status="error"``."""
    created_at: datetime
    updated_at: datetime


class IntegrationTokens(_Read):
    """An integration with its tokens decrypted, for the code that calls the provider."""

    provider: str
    access_token: SecretStr
    refresh_token: SecretStr | None
    expires_at: datetime | None
    scope: str | None
