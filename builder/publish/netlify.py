"""The ``netlify`` publisher: Netlify's deploy API with file digests.

1. ``POST /sites`` creates the site on the first publish (its id is remembered);
2. ``POST /sites/{site_id}/deploys`` sends the ``files`` map, path → SHA1 of the
   content, and Netlify answers with the digests it ``required`` (the ones it has never
   stored for this account);
3. ``PUT /deploys/{deploy_id}/files/{path}`` uploads only the files whose digest is
   required, one per digest, a few at a time;
4. ``GET /deploys/{deploy_id}`` is polled until the deploy is ``ready`` (or ``error``).

Netlify publishes a deploy only when it is ready, so a deploy that fails half-way
(an upload refused, the network gone) leaves the previous one serving; the error names
the step and file. A retry creates a new deploy whose ``required`` list holds only what
is still missing, so files uploaded before the failure are not sent again.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any
from urllib.parse import quote

import httpx

from builder.errors import InvalidInput, NotFound, PublishFailed
from builder.publish.publishers import PublishJob, PublishOutcome

__all__ = ["NetlifyClient", "NetlifyPublisher"]

_UPLOADS_AT_ONCE = 4
_POLL_SECONDS = 1.0


class NetlifyClient:
    """The few Netlify REST calls a deploy needs, with one user's token."""

    def __init__(self, api_url: str, token: str, *, timeout: float) -> None:
        self._client = httpx.AsyncClient(
            base_url=api_url.rstrip("/"),
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "builder"},
        )

    async def __aenter__(self) -> NetlifyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def call(
        self,
        step: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
    ) -> dict[str, Any]:
        """One API call; any failure is a ``PublishFailed`` naming ``step``."""
        headers = {"Content-Type": "application/octet-stream"} if content is not None else None
        try:
            response = await self._client.request(
                method, path, json=json, content=content, headers=headers
            )
        except httpx.HTTPError as exc:
            raise PublishFailed(
                "netlify",
                step,
                f"{step} failed: Netlify could not be reached ({type(exc).__name__})",
            ) from None
        if response.status_code >= 400:
            try:
                body = response.json()
                reason = str(body.get("message") or body.get("error") or "")
            except ValueError:
                reason = ""
            reason = reason or response.reason_phrase
            if response.status_code == 401:
                reason += "; reconnect Netlify"
            raise PublishFailed(
                "netlify",
                step,
                f"{step} failed: Netlify answered {response.status_code}: {reason[:300]}",
            )
        data = response.json() if response.content else {}
        return data if isinstance(data, dict) else {"items": data}


class NetlifyPublisher:
    """Options: ``site_id`` (default: a site created on the first publish and
    remembered), ``site_name`` (the name of a created site)."""

    secret_options: tuple[str, ...] = ()
    wants_build = True

    def check(self, config: dict[str, Any]) -> None:
        """Nothing to check beyond the option types."""

    async def publish(self, job: PublishJob) -> PublishOutcome:
        """Deploy the files, uploading only those Netlify lacks, and wait until ready."""
        try:
            token = await job.integration_token("netlify")
        except NotFound:
            raise InvalidInput(
                "Netlify is not connected: connect it first (an OAuth connection, or "
                "PUT /api/integrations/netlify/token with a personal access token)"
            ) from None
        paths = await job.files.paths()
        if not paths:
            raise InvalidInput("nothing to deploy: no files")
        digests: dict[str, str] = {}
        for path in paths:  # one file in memory at a time
            digests[path] = hashlib.sha1(await job.files.read(path)).hexdigest()  # noqa: S324 - Netlify's digest
        settings = job.settings
        async with NetlifyClient(
            settings.netlify_api_url, token, timeout=settings.timeout_publish
        ) as netlify:
            site_id = job.config.get("site_id")
            remember: dict[str, Any] = {}
            if not site_id:
                body = {"name": job.config["site_name"]} if job.config.get("site_name") else {}
                site = await netlify.call("create site", "POST", "/sites", json=body)
                site_id = str(site["id"])
                remember["site_id"] = site_id
            await job.progress(f"creating a deploy of {len(paths)} files")
            deploy = await netlify.call(
                "create deploy",
                "POST",
                f"/sites/{site_id}/deploys",
                json={"files": {f"/{path}": sha for path, sha in digests.items()}},
            )
            deploy_id = str(deploy["id"])
            required = set(deploy.get("required") or [])
            uploads: dict[str, str] = {}
            for path, sha in digests.items():
                if sha in required and sha not in uploads.values():
                    uploads[path] = sha
            await job.progress(f"uploading {len(uploads)} of {len(paths)} files")
            gate = asyncio.Semaphore(_UPLOADS_AT_ONCE)

            async def upload(path: str) -> None:
                async with gate:
                    data = await job.files.read(path)
                    await netlify.call(
                        f"upload of {path}",
                        "PUT",
                        f"/deploys/{deploy_id}/files/{quote(path)}",
                        content=data,
                    )

            # Every upload runs to its end, so a retry has as little left as possible.
            results = await asyncio.gather(
                *(upload(path) for path in uploads), return_exceptions=True
            )
            failed = [
                (path, result)
                for path, result in zip(uploads, results, strict=True)
                if isinstance(result, BaseException)
            ]
            for _, result in failed:
                if not isinstance(result, PublishFailed):
                    raise result
            if failed:
                first = failed[0][1]
                assert isinstance(first, PublishFailed)
                more = f" (and {len(failed) - 1} more uploads failed)" if len(failed) > 1 else ""
                raise PublishFailed(
                    "netlify",
                    first.step,
                    f"{first.message.removeprefix('netlify: ')}{more}; deploy {deploy_id} "
                    "was not published and the previous deploy still serves",
                )
            state = await self._wait_ready(netlify, deploy_id, settings.netlify_deploy_seconds)
        url = state.get("ssl_url") or state.get("url") or state.get("deploy_ssl_url")
        return PublishOutcome(
            url=str(url) if url else None,
            detail={
                "site_id": site_id,
                "deploy_id": deploy_id,
                "deploy_url": state.get("deploy_ssl_url") or state.get("deploy_url"),
                "files": len(paths),
                "uploaded": len(uploads),
            },
            remember=remember,
        )

    async def _wait_ready(
        self, netlify: NetlifyClient, deploy_id: str, seconds: float
    ) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            state = await netlify.call("deploy status", "GET", f"/deploys/{deploy_id}")
            if state.get("state") == "ready":
                return state
            if state.get("state") == "error":
                reason = state.get("error_message") or "no reason given"
                raise PublishFailed(
                    "netlify",
                    "deploy status",
                    f"deploy {deploy_id} failed on Netlify: {reason}; the previous deploy "
                    "still serves",
                )
            if time.monotonic() > deadline:
                raise PublishFailed(
                    "netlify",
                    "deploy status",
                    f"deploy {deploy_id} was not ready after {seconds:g} s (state "
                    f"{state.get('state')!r}); the previous deploy still serves",
                )
            await asyncio.sleep(_POLL_SECONDS)
