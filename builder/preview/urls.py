"""Public preview URLs: where clients (and the studio's iframe) open a preview."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from builder.errors import ConfigurationError
from builder.preview.tokens import PreviewSigner, preview_key
from builder.sandbox.base import ProcessInfo
from builder.settings import Settings

__all__ = [
    "client_preview_url",
    "preview_host_suffix",
    "preview_origin",
    "preview_template",
    "public_preview_url",
]

_PLACEHOLDER = "{token}"


def preview_template(settings: Settings) -> str | None:
    """The preview URL with a ``{token}`` host label; None when previews are off.

    ``BUILDER_PREVIEW_BASE_URL`` when set, else ``http://{token}.localhost:<port>/`` for
    ``BUILDER_PREVIEW_PORT`` (browsers resolve every ``*.localhost`` name to loopback,
    so each preview gets its own origin, cookies included, on a development machine).

    Raises:
        ConfigurationError: The base URL has no ``{token}`` label before its domain.
    """
    if settings.preview_base_url:
        template = settings.preview_base_url.rstrip("/") + "/"
        split = urlsplit(template.replace(_PLACEHOLDER, "t"))
        if (
            not template.startswith(("http://", "https://"))
            or not urlsplit(template).netloc.startswith(_PLACEHOLDER + ".")
            or urlsplit(template).path not in ("", "/")
            or not split.hostname
        ):
            raise ConfigurationError(
                "BUILDER_PREVIEW_BASE_URL must look like https://{token}.preview.example.com "
                f"(the token as the first host label, no path); got {settings.preview_base_url!r}"
            )
        return template
    if settings.preview_port:
        return f"http://{_PLACEHOLDER}.localhost:{settings.preview_port}/"
    return None


def preview_host_suffix(template: str) -> str:
    """What follows the token in a preview's host name (``.preview.example.com``)."""
    netloc = urlsplit(template).netloc
    host = netloc.split(":", 1)[0] if not netloc.startswith("[") else netloc
    return host[len(_PLACEHOLDER) :].lower()


def preview_origin(settings: Settings) -> str | None:
    """The preview origin as a CSP source (``https://*.preview.example.com``), for ``frame-src``.

    None when previews are off.
    """
    template = preview_template(settings)
    if template is None:
        return None
    return template.replace(_PLACEHOLDER, "*").rstrip("/")


def public_preview_url(
    settings: Settings, project_id: uuid.UUID | str, *, generation: int, ttl: int | None = None
) -> str | None:
    """A signed preview URL for the project's current dev server; None when previews are off.

    Args:
        settings: The preview settings and the secret key.
        project_id: The project.
        generation: The dev server's start time (whole seconds), so a restart revokes it.
        ttl: Seconds the link stays valid (default ``BUILDER_PREVIEW_TOKEN_TTL``).
    """
    template = preview_template(settings)
    if template is None:
        return None
    key = uuid.UUID(str(project_id))
    signer = PreviewSigner(preview_key(settings), ttl=settings.preview_token_ttl)
    return template.replace(_PLACEHOLDER, signer.sign(key, generation=generation, ttl=ttl))


def client_preview_url(
    settings: Settings, project_id: uuid.UUID | str, info: ProcessInfo
) -> str | None:
    """The URL a client should open for a running dev server.

    The gateway URL when previews are on; else the sandbox's own (internal) URL, which
    only a browser on the sandbox's machine can open.
    """
    try:
        public = public_preview_url(settings, project_id, generation=int(info.started_at))
    except ValueError:  # not a project id (an application's own thread id)
        public = None
    return public or info.preview_url
