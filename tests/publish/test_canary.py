"""Canary: the agent publishes when asked, and no credential ever shows.

A scripted agent pushes to GitHub (creating the repository), fails a push to a generic
remote whose password is wrong, asks a careless fake GitHub that echoes the token in
its error, and deploys to Netlify with one upload failing. Every token and password is
a unique canary string; none may appear in the run's events, the stored messages (tool
results), the publication records, the database's readable columns, or the log.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from builder.crypto import Keyring
from builder.persistence import Database, create_project, get_or_create_user
from builder.persistence.integrations import store_integration
from builder.persistence.messages import list_messages
from builder.persistence.publishing import list_publications, save_publish_target
from builder.runs.service import RunService
from builder.settings import Settings
from tests.support.fake_hosts import FakeGitHub, FakeNetlify
from tests.support.git_server import GitServer
from tests.support.scripts import call, write_script

GITHUB_TOKEN = "canary-gh-0c2d7e41"
NETLIFY_TOKEN = "canary-nf-9b13aa05"
REMOTE_PASSWORD = "canary-pw-5e88f1c6"
CANARIES = (GITHUB_TOKEN, NETLIFY_TOKEN, REMOTE_PASSWORD)


@pytest.fixture
async def hosts(tmp_path: Path) -> AsyncIterator[tuple[GitServer, FakeGitHub, FakeNetlify]]:
    (tmp_path / "srv").mkdir()
    with (
        GitServer(tmp_path / "srv", "x-access-token", GITHUB_TOKEN) as git,
        FakeGitHub(GITHUB_TOKEN, git) as github,
        FakeNetlify(NETLIFY_TOKEN) as netlify,
    ):
        netlify.fail_upload = "about.html"
        yield git, github, netlify


async def test_no_token_in_events_tool_results_records_or_logs(
    db: Database,
    settings: Settings,
    tmp_path: Path,
    hosts: tuple[GitServer, FakeGitHub, FakeNetlify],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    git, github, netlify = hosts
    settings = settings.model_copy(
        update={
            "encryption_keys": SecretStr("k1:" + base64.b64encode(b"c" * 32).decode()),
            "github_api_url": github.url,
            "netlify_api_url": netlify.api_url,
            "netlify_deploy_seconds": 5,
        }
    )
    keyring = Keyring.from_settings(settings)
    user = await get_or_create_user(db, name="alice")
    project = await create_project(db, user_id=user.id, name="Canary Bakery")
    for provider, token in (("github", GITHUB_TOKEN), ("netlify", NETLIFY_TOKEN)):
        await store_integration(
            db, user_id=user.id, provider=provider, access_token=token, keyring=keyring
        )
    await save_publish_target(
        db,
        project_id=project.id,
        publisher="git",
        config={"url": git.url("other.git"), "username": "x-access-token"},
        secrets={"password": REMOTE_PASSWORD},
        keyring=keyring,
    )
    turns: list[list[dict[str, Any]]] = [
        [
            {
                "tool_calls": [
                    call("write_file", path="index.html", content="<h1>Canary</h1>\n"),
                    call("write_file", path="about.html", content="<p>about</p>\n"),
                ]
            },
            {"content": "Made the bakery pages."},
        ],
        [
            {"tool_calls": [call("publish_project", publisher="github", create_repository=True)]},
            {"tool_calls": [call("publish_project", publisher="git")]},
            {
                "tool_calls": [
                    call(
                        "publish_project",
                        publisher="github",
                        repo="leaky",
                        create_repository=True,
                    )
                ]
            },
            {"tool_calls": [call("publish_project", publisher="netlify", site_name="canary")]},
            {"content": "Pushed to GitHub; the other remote and Netlify failed."},
        ],
    ]
    model = write_script(tmp_path, turns)
    events: list[str] = []
    async with RunService.open(settings, db=db, model=model) as service:
        for prompt in ("Build a bakery site", "Push this to GitHub and publish it"):
            handle = await service.start(user_id=user.id, project_id=project.id, prompt=prompt)
            events += [json.dumps(event.data, default=str) async for event in handle.events()]
            result = await handle.wait()
            assert result.status == "success", result.error

    stored = (await list_messages(db, project_id=project.id)).items
    results = [
        str(part.get("result", ""))
        for message in stored
        for part in message.parts
        if part.get("type") == "tool-call"
    ]
    published = [r for r in results if r.startswith("Published version")]
    assert len(published) == 1 and "https://github.test/alice/canary-bakery" in published[0]
    failures = [r for r in results if "publish_failed" in r]
    assert len(failures) == 3, results
    assert any("git ls-remote failed" in r for r in failures)
    assert any("***" in r for r in failures)  # the echoed token was cut out
    assert any("upload of about.html failed" in r for r in failures)
    records = await list_publications(db, project_id=project.id)
    assert sorted(p.status for p in records) == ["error", "error", "error", "ready"]

    async def readable(session: AsyncSession) -> str:
        rows = await session.execute(
            text(
                "SELECT config::text, coalesce(secret, '') FROM publish_targets "
                "UNION ALL SELECT coalesce(error, '') || detail::text, coalesce(url, '') "
                "FROM publications UNION ALL SELECT parts::text, '' FROM messages"
            )
        )
        return str(rows.all())

    everything = "\n".join([*events, *results, caplog.text, await db.run(readable)])
    assert "publish_project" in everything
    for canary in CANARIES:
        assert canary not in everything, canary
