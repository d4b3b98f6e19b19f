"""The ``github`` publisher: a GitHub repository, through the user's GitHub connection.

It uses the access token of the user's ``github`` OAuth integration (stored encrypted)
for GitHub's REST API — ``GET /user`` for the commit author, ``GET /repos/{owner}/{repo}``
to find the repository, ``POST /user/repos`` (or ``/orgs/{org}/repos``) to create it when
asked — and for the push itself, as the password of ``x-access-token`` over HTTPS
(:mod:`builder.publish.git`). The repository's URL is the publication's link.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from builder.errors import InvalidInput, NotFound, PublishFailed
from builder.publish.git import GitCredentials, check_branch, push_files
from builder.publish.publishers import PublishJob, PublishOutcome

__all__ = ["GitHubClient", "GitHubPublisher", "repository_name"]

_REPO = re.compile(r"(?:(?P<owner>[A-Za-z0-9-]{1,39})/)?(?P<name>[A-Za-z0-9._-]{1,100})")


def repository_name(project_name: str) -> str:
    """A repository name made from a project's name (``My Bakery!`` → ``my-bakery``)."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", project_name.lower()).strip("-.")
    return slug[:100] or "site"


class GitHubClient:
    """The few GitHub REST calls publishing needs, with one user's token."""

    def __init__(self, api_url: str, token: str, *, timeout: float) -> None:
        self._client = httpx.AsyncClient(
            base_url=api_url.rstrip("/"),
            timeout=timeout,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {token}",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "builder",
            },
        )

    async def __aenter__(self) -> GitHubClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def _call(
        self, step: str, method: str, path: str, *, json: Any = None, missing_ok: bool = False
    ) -> dict[str, Any] | None:
        try:
            response = await self._client.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise PublishFailed(
                "github", step, f"GitHub could not be reached ({type(exc).__name__})"
            ) from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {}
            reason = str(body.get("message") or response.reason_phrase)
            details = [
                str(e.get("message") or e.get("code"))
                for e in body.get("errors") or []
                if isinstance(e, dict)
            ]
            if details:
                reason += f" ({'; '.join(details)})"
            if response.status_code == 401:
                reason += "; reconnect GitHub"
            raise PublishFailed(
                "github", step, f"{step} failed: GitHub answered {response.status_code}: {reason}"
            )
        data = response.json()
        assert isinstance(data, dict)
        return data

    async def user(self) -> dict[str, Any]:
        """The token's user (``GET /user``)."""
        found = await self._call("get user", "GET", "/user")
        assert found is not None
        return found

    async def repository(self, owner: str, name: str) -> dict[str, Any] | None:
        """A repository, or None when it does not exist (or the token cannot see it)."""
        return await self._call("get repository", "GET", f"/repos/{owner}/{name}", missing_ok=True)

    async def create_repository(
        self, name: str, *, org: str | None, private: bool, description: str
    ) -> dict[str, Any]:
        """Create an empty repository for the user (or in ``org``)."""
        path = f"/orgs/{org}/repos" if org else "/user/repos"
        body = {"name": name, "private": private, "description": description, "auto_init": False}
        created = await self._call("create repository", "POST", path, json=body)
        assert created is not None
        return created


class GitHubPublisher:
    """Options: ``repo`` (``name`` or ``owner/name``; default: from the project's name),
    ``create`` (create it when missing), ``private`` (for a created one; default true),
    ``branch`` (default: the repository's default branch)."""

    secret_options: tuple[str, ...] = ()
    wants_build = False

    def check(self, config: dict[str, Any]) -> None:
        """A well-formed repository name and branch."""
        repo = config.get("repo")
        if repo is not None and not _REPO.fullmatch(str(repo)):
            raise InvalidInput(f"repository {repo!r}: use name or owner/name")
        if config.get("branch"):
            check_branch(str(config["branch"]))

    async def publish(self, job: PublishJob) -> PublishOutcome:
        """Find (or create) the repository and push the version to it."""
        try:
            token = await job.integration_token("github")
        except NotFound:
            raise InvalidInput(
                "GitHub is not connected: connect it first (POST /api/integrations/github/connect)"
            ) from None
        match = _REPO.fullmatch(str(job.config.get("repo") or repository_name(job.project_name)))
        assert match is not None
        async with GitHubClient(
            job.settings.github_api_url, token, timeout=job.settings.timeout_publish
        ) as github:
            me = await github.user()
            login = str(me["login"])
            owner = match["owner"] or login
            repo = await github.repository(owner, match["name"])
            created = False
            if repo is None:
                if not job.config.get("create"):
                    raise InvalidInput(
                        f"GitHub repository {owner}/{match['name']} does not exist (or the "
                        "connection cannot see it); ask to create it (create=true)"
                    )
                await job.progress(f"creating the GitHub repository {owner}/{match['name']}")
                repo = await github.create_repository(
                    match["name"],
                    org=None if owner == login else owner,
                    private=bool(job.config.get("private", True)),
                    description=f"{job.project_name} (built with builder)",
                )
                created = True
        branch = str(job.config.get("branch") or repo.get("default_branch") or "main")
        email = me.get("email") or f"{me['id']}+{login}@users.noreply.github.com"
        await job.progress(f"pushing to {repo['full_name']}")
        result = await push_files(
            job.files,
            url=str(repo["clone_url"]),
            branch=branch,
            credentials=GitCredentials("x-access-token", token),
            author_name=str(me.get("name") or login),
            author_email=str(email),
            message=job.commit_message,
            timestamp=int(time.time()),
            timeout=job.settings.timeout_publish,
        )
        return PublishOutcome(
            url=str(repo["html_url"]),
            detail={
                "repository": repo["full_name"],
                "created": created,
                "commit": result.commit,
                "branch": result.branch,
                "pushed": result.pushed,
                "files": result.files,
            },
            remember={"repo": repo["full_name"], "create": False},
        )
