"""What the HTTP API accepts and answers, beyond the persistence schemas it reuses.

Every request body forbids unknown fields, and none has a field for ids, owners,
timestamps or server-managed state (sandbox ids, preview URLs): those cannot be set by
a caller, however the JSON is crafted.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from builder.http.thumbnails import Thumbnail
from builder.images import MAX_IMAGES, MEDIA_TYPES, Image, check_image_count, decode_image
from builder.models.prompts import PROMPT_INPUT_MAX_CHARS
from builder.persistence.schemas import ProjectSummary, PublicationPublic, PublishTargetPublic
from builder.runs.handle import MAX_PROMPT_CHARS

__all__ = [
    "ChatBody",
    "ChatImage",
    "ChatResult",
    "Check",
    "ClearedMessages",
    "ConnectResult",
    "DevServer",
    "FileContent",
    "FileTree",
    "FileTreeEntry",
    "GeneratedTitle",
    "Health",
    "ImprovedPrompt",
    "MessageAppendBody",
    "ProjectCreateBody",
    "ProjectUpdateBody",
    "PromptBody",
    "PublishBody",
    "PublishState",
    "PublisherInfoOut",
    "Readiness",
    "RequestBody",
    "RestoreBody",
    "RestoreResult",
    "TokenBody",
    "check_storable",
]


def check_storable(value: Any, where: str = "body") -> None:
    """Refuse text PostgreSQL cannot store: NUL characters and unpaired surrogates."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where} contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where} is not valid Unicode (unpaired surrogate)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable(key, where)
            check_storable(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_storable(item, f"{where}[{index}]")


class RequestBody(BaseModel):
    """A request body: unknown fields refused, every string storable."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _only_storable_text(cls, data: Any) -> Any:
        check_storable(data)
        return data


class ProjectListItem(ProjectSummary):
    """A project as listed, with the thumbnails of its newest screenshot (None without)."""

    thumbnail: Thumbnail | None = None


class ProjectCreateBody(RequestBody):
    """A new project."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    starter: str | None = Field(
        default=None,
        max_length=40,
        description="Begin with a starter's files as version 1 (`static`, `vite-react-ts`, "
        "`astro`, or a plugin's); none = an empty project.",
    )


class ProjectUpdateBody(RequestBody):
    """Fields to change; those left out stay as they are."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)


class MessageAppendBody(RequestBody):
    """A message to add to the conversation (the agent's own are added by chat)."""

    role: Literal["user", "assistant"]
    content: str = Field(default="", max_length=100_000)
    parts: list[dict[str, Any]] = Field(default_factory=list, max_length=200)


class ClearedMessages(BaseModel):
    """How many messages were deleted."""

    deleted: int


class FileTreeEntry(BaseModel):
    """A file of a version."""

    path: str
    sha256: str
    size: int


class FileTree(BaseModel):
    """Every file of a version (0 when the project has none yet)."""

    version: int
    files: list[FileTreeEntry]


class FileContent(BaseModel):
    """One file of a version: UTF-8 text as is, anything else base64-encoded."""

    path: str
    version: int
    size: int
    sha256: str
    encoding: Literal["utf-8", "base64"]
    content: str


class FileWriteBody(RequestBody):
    """A file's new text, and the content it replaces (compare-and-swap)."""

    content: str = Field(description="The new content, as UTF-8 text.")
    base_sha256: str = Field(
        pattern=r"^(?:[0-9a-f]{64})?$",
        description="SHA-256 of the latest version's content that the edit was made on; "
        '`""` for a new file. Any other content now is `409 concurrent_modification`.',
    )


class FileWriteResult(BaseModel):
    """Where an edit was saved."""

    path: str
    sha256: str
    version: int | None
    """The new version; None when the content was already this."""


class RestoreBody(RequestBody):
    """Which version to make current again."""

    version: int = Field(ge=1, le=2_147_483_647)


class RestoreResult(BaseModel):
    """The sandbox now holds ``restored_version``; it was saved as ``new_version``."""

    restored_version: int
    new_version: int | None
    """None when the version restored already was the latest."""
    files: int


class ChatImage(RequestBody):
    """An image attached to a turn (its bytes are checked against its type)."""

    media_type: str = Field(
        json_schema_extra={"enum": list(MEDIA_TYPES)},
        description="One of " + ", ".join(f"`{t}`" for t in MEDIA_TYPES) + ".",
    )
    data: str = Field(description="The image's bytes, standard base64.")


class ChatBody(RequestBody):
    """One user turn."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    multitask: Literal["reject", "enqueue"] = Field(
        default="reject",
        description="`reject`: 409 while another run is in progress on the project; "
        "`enqueue`: wait for it, then run.",
    )
    images: list[ChatImage] = Field(
        default_factory=list,
        description=f"Up to {MAX_IMAGES} images the model sees after the prompt, each at "
        "most `BUILDER_MAX_IMAGE_BYTES` (413 `image_too_large`); a wrong type, bad base64, "
        "bytes of another format or too many images are 422 `invalid_image`.",
    )

    def decoded_images(self, *, limit: int) -> list[Image]:
        """The images, decoded and checked.

        Raises:
            InvalidImage: Too many, a wrong type, bad base64 or bytes of another format.
            ImageTooLarge: One is larger than ``limit`` bytes.
        """
        check_image_count(self.images)
        return [
            decode_image(image.media_type, image.data, limit=limit, index=index)
            for index, image in enumerate(self.images)
        ]


class ChatResult(BaseModel):
    """How a run ended (the same fields as the ``run_finished`` event)."""

    run_id: str
    project_id: uuid.UUID
    status: Literal["pending", "running", "success", "error", "cancelled", "interrupted"]
    stop_reason: str | None
    reply: str
    files_created: list[str]
    files_changed: list[str]
    files_deleted: list[str]
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float | None = Field(
        None, description="US dollars the run spent; null when the model's price is unknown."
    )
    steps: int
    preview_url: str | None
    snapshot_version: int | None
    error: str | None
    error_code: str | None


class PromptBody(RequestBody):
    """Text for a prompt helper."""

    prompt: str = Field(min_length=1, max_length=PROMPT_INPUT_MAX_CHARS)


class ImprovedPrompt(BaseModel):
    """A clearer version of the request."""

    prompt: str


class GeneratedTitle(BaseModel):
    """A short project title."""

    title: str


class Health(BaseModel):
    """The process is up."""

    status: Literal["ok"]
    version: str
    uptime_seconds: float


class Check(BaseModel):
    """One readiness check."""

    ok: bool
    detail: str


class Readiness(BaseModel):
    """Whether this process can serve requests, check by check."""

    status: Literal["ready", "unavailable"]
    checks: dict[str, Check]


class DevServer(BaseModel):
    """The project's dev server."""

    running: bool
    command: str | None
    port: int | None
    preview_url: str | None
    exit_code: int | None
    started_at: datetime | None
    logs: list[str]
    answering: bool | None = None
    """After a start: whether the server answered on its port in time."""
    hot_reload: bool = False
    """The server updates its pages itself when files change (hot module replacement):
    a page open on it need not be loaded again after an edit."""


class PublishBody(RequestBody):
    """Which version to publish, and the target's settings (stored for next time).

    ``options`` depend on the publisher (``GET /api/publishers``): e.g. ``url``,
    ``branch``, ``username`` and ``password`` for ``git``; ``repo``, ``create`` and
    ``private`` for ``github``; ``site_id`` or ``site_name`` for ``netlify``. Credentials
    among them are stored encrypted and never shown again.
    """

    version: int | None = Field(None, ge=1, le=2_147_483_647)
    options: dict[str, str | bool | int] = Field(default_factory=dict, max_length=20)


class PublisherInfoOut(BaseModel):
    """A publisher a project can be published with."""

    name: str
    description: str
    plugin: str
    builds: bool
    """Publishes the build output (dist/) of a project that builds."""
    secret_options: list[str]
    """Options stored encrypted."""


class PublishState(BaseModel):
    """A project's publish targets and its latest publications, newest first."""

    targets: list[PublishTargetPublic]
    publications: list[PublicationPublic]


class TokenBody(RequestBody):
    """A personal access token for a provider (instead of the OAuth flow)."""

    access_token: str = Field(min_length=1, max_length=4096)


class ConnectResult(BaseModel):
    """Where to send the user to grant access."""

    authorize_url: str
    expires_at: datetime
