"""The ``git`` publisher: any git remote over http(s), with a password or token kept
encrypted on the project's target."""

from __future__ import annotations

import time
from typing import Any

from builder.errors import InvalidInput
from builder.publish.git import GitCredentials, check_branch, check_remote_url, push_files
from builder.publish.publishers import PublishJob, PublishOutcome

__all__ = ["GitRemotePublisher", "author_email_of"]


def author_email_of(job: PublishJob) -> str:
    """The commit author's address: ``author_email`` if set, else one for the user."""
    return str(job.config.get("author_email") or f"{job.user.id}@users.builder.invalid")


class GitRemotePublisher:
    """Options: ``url`` (http or https), ``branch`` (default ``main``), ``username``
    and ``password`` (a token; stored encrypted), ``author_name``, ``author_email``."""

    secret_options = ("password",)
    wants_build = False

    def check(self, config: dict[str, Any]) -> None:
        """A remote URL without credentials in it, and a usable branch."""
        if not config.get("url"):
            raise InvalidInput("the git publisher needs the remote's url")
        check_remote_url(str(config["url"]))
        check_branch(str(config.get("branch") or "main"))

    async def publish(self, job: PublishJob) -> PublishOutcome:
        """Push the version as one commit on the branch."""
        password = job.secrets.get("password")
        credentials = (
            GitCredentials(str(job.config.get("username") or "git"), password) if password else None
        )
        await job.progress("pushing to the git remote")
        result = await push_files(
            job.files,
            url=str(job.config["url"]),
            branch=str(job.config.get("branch") or "main"),
            credentials=credentials,
            author_name=str(job.config.get("author_name") or job.user.name),
            author_email=author_email_of(job),
            message=job.commit_message,
            timestamp=int(time.time()),
            timeout=job.settings.timeout_publish,
        )
        return PublishOutcome(
            url=str(job.config["url"]),
            detail={
                "commit": result.commit,
                "branch": result.branch,
                "pushed": result.pushed,
                "files": result.files,
            },
        )
