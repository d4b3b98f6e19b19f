"""Publishers: where a version can go (a git remote, GitHub, a static host), by name.

A publisher is any object with a ``name``-independent :meth:`Publisher.publish`; plugins
add them through the ``register_publishers(register)`` hook::

    @hookimpl
    def register_publishers(register):
        register("pages", PagesPublisher(), description="Publish to Pages")

builder calls ``publish(job)`` with everything one push needs — the files (the build
output when the publisher wants it and the project builds), the target's stored
settings merged with this call's options, its decrypted credentials, and a way to get
the user's OAuth token for a provider — and records the outcome.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from builder.errors import InvalidInput
from builder.persistence.schemas import UserPublic
from builder.publish.source import FileSource
from builder.registry import NamedRegistry
from builder.settings import Settings

__all__ = [
    "PublishJob",
    "PublishOutcome",
    "Publisher",
    "PublisherInfo",
    "PublisherRegistry",
]


@dataclass
class PublishJob:
    """One push or deploy, as a publisher receives it.

    Attributes:
        project_id: The project.
        project_name: Its name (a default repository or site name).
        user: Its owner, who publishes.
        version: The version published.
        summary: That version's summary (the turn that made it): the commit message.
        files: What to publish, exactly.
        config: The target's settings: the stored ones updated with this call's options.
        secrets: The target's own credentials (a git remote's password), decrypted.
        settings: builder's settings (API URLs, timeouts).
        integration_token: The user's OAuth access token for a provider (``NotFound``
            when the user has not connected it).
    """

    project_id: uuid.UUID
    project_name: str
    user: UserPublic
    version: int
    summary: str
    files: FileSource
    config: dict[str, Any]
    secrets: dict[str, str]
    settings: Settings
    integration_token: Callable[[str], Awaitable[str]]
    on_progress: Callable[[str], Awaitable[None]] | None = None

    @property
    def commit_message(self) -> str:
        """The summary, and the version it belongs to."""
        title = self.summary.strip() or f"Version {self.version}"
        return f"{title}\n\nbuilder project {self.project_id}, version {self.version}\n"

    async def progress(self, message: str) -> None:
        """Report a step (to an agent's tool events, a CLI's output)."""
        if self.on_progress is not None:
            await self.on_progress(message)


@dataclass
class PublishOutcome:
    """What a publisher did."""

    url: str | None
    """Where the result can be seen: the repository, the site."""
    detail: dict[str, Any] = field(default_factory=dict)
    """Facts worth keeping: the commit, the deploy id, how many files were uploaded."""
    remember: dict[str, Any] = field(default_factory=dict)
    """Settings to store on the target for next time (a created repository, a site id)."""


@runtime_checkable
class Publisher(Protocol):
    """What ``register_publishers`` registers."""

    secret_options: tuple[str, ...]
    """Options stored encrypted (never in ``config``), e.g. ``("password",)``."""
    wants_build: bool
    """Publish the build output (``dist/``) of a project that builds."""

    def check(self, config: dict[str, Any]) -> None:
        """Refuse unusable settings before anything is stored or sent (``InvalidInput``)."""
        ...

    async def publish(self, job: PublishJob) -> PublishOutcome:
        """Publish ``job.files``; raise ``PublishFailed`` saying which step failed."""
        ...


@dataclass(frozen=True, slots=True)
class PublisherInfo:
    """A registered publisher and where it came from."""

    name: str
    description: str
    publisher: Publisher
    plugin: str


class PublisherRegistry(NamedRegistry[PublisherInfo]):
    """Publishers by name, each knowing the plugin that registered it."""

    def __init__(self) -> None:
        super().__init__("publisher")

    def register(
        self, name: str, publisher: Publisher, *, description: str, plugin: str
    ) -> PublisherInfo:
        """Add a publisher.

        Raises:
            InvalidInput: A malformed or taken name, or an object that is no publisher.
        """
        self._claim(name, plugin)
        if not isinstance(publisher, Publisher):
            raise InvalidInput(
                f"publisher {name!r} of {plugin} needs secret_options, wants_build, "
                "check(config) and async publish(job)"
            )
        return self._add(name, PublisherInfo(name, description, publisher, plugin))
