"""The preview gateway inside the service: which requests it gets, and their targets.

:class:`PreviewDispatch` is the outermost layer of the app. A request is a preview
request when it arrives on the preview listener (``BUILDER_PREVIEW_PORT``) or names a
preview host (``<token>.preview.example.com``); it then goes to the
:class:`~builder.preview.gateway.PreviewGateway` and never reaches an API route,
middleware or credential check. Everything else is the API, which never serves a
preview.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from builder.http.middleware import BodySizeLimitMiddleware
from builder.preview.gateway import Misdirected, PreviewGateway, PreviewTarget
from builder.preview.tokens import PreviewGrant, PreviewSigner, preview_key
from builder.preview.urls import preview_host_suffix, preview_template
from builder.settings import Settings

__all__ = ["PreviewDispatch", "make_gateway"]


def make_gateway(settings: Settings, services: Callable[[], object]) -> PreviewGateway | None:
    """The gateway for these settings (None when previews are off).

    Args:
        settings: Preview settings.
        services: Returns the running :class:`~builder.http.services.Services`.
    """
    template = preview_template(settings)
    if template is None:
        return None

    async def resolve(grant: PreviewGrant, may_forward: bool) -> PreviewTarget | None:
        from builder.http.services import Services

        running = services()
        assert isinstance(running, Services)
        counter = running.metrics.preview_requests
        try:
            target = await running.runs.workspaces.preview_target(grant, may_forward=may_forward)
        except Misdirected:
            counter.labels(target="misdirected").inc()
            raise
        if target is not None:
            counter.labels(target="forwarded" if target.forwarded else "local").inc()
        return target

    return PreviewGateway(
        signer=PreviewSigner(preview_key(settings), ttl=settings.preview_token_ttl),
        resolve=resolve,
        host_suffix=preview_host_suffix(template),
        timeout=settings.timeout_sandbox,
    )


class PreviewDispatch:
    """Send preview requests to the gateway and everything else to the API.

    Args:
        app: The API.
        gateway: The preview gateway.
        preview_port: The preview listener's port (every request on it is a preview's).
        body_limit: Largest request body a preview accepts.
    """

    def __init__(
        self, app: ASGIApp, *, gateway: PreviewGateway, preview_port: int | None, body_limit: int
    ) -> None:
        self.app = app
        self.gateway = gateway
        self.preview_port = preview_port
        self.limited = BodySizeLimitMiddleware(gateway, limit=body_limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self._is_preview(scope):
            await self.limited(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _is_preview(self, scope: Scope) -> bool:
        server = scope.get("server")
        if self.preview_port is not None and server and server[1] == self.preview_port:
            return True
        return self.gateway.is_preview_host(scope)
