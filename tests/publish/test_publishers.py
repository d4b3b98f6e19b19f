"""Publishing through the publishers: a generic git remote, GitHub and Netlify, each
against a real loopback server (git) or a fake built from the API's documented shapes,
recorded per project, with no credential in any error, record or log line."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from builder.crypto import Keyring
from builder.errors import InvalidInput, PublishFailed
from builder.persistence import Database, create_project, get_or_create_user, save_snapshot
from builder.persistence.integrations import store_integration
from builder.persistence.publishing import list_publications, list_publish_targets
from builder.persistence.schemas import ProjectPublic, PublicationPublic, UserPublic
from builder.plugins import get_publisher_registry
from builder.publish.service import publish_version
from builder.settings import Settings
from tests.publish.test_git import clone, files_at, log
from tests.support.fake_hosts import FakeGitHub, FakeNetlify
from tests.support.git_server import GitServer

GIT_TOKEN = "canary-remote-pass-91c3"
GITHUB_TOKEN = "canary-gho-token-7ab2"
NETLIFY_TOKEN = "canary-nfp-token-44e0"
CANARIES = (GIT_TOKEN, GITHUB_TOKEN, NETLIFY_TOKEN)
KEYS = "k1:" + base64.b64encode(b"p" * 32).decode()
SITE = {
    "index.html": b"<h1>Harbor Lane</h1>\n",
    "about.html": b"<p>about</p>\n",
    "css/site.css": b"body{margin:0}\n",
    "copy.css": b"body{margin:0}\n",  # same digest as css/site.css: uploaded once
    "img/logo.bin": bytes(range(256)) * 8,
}


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    (tmp_path / "srv").mkdir()
    with GitServer(tmp_path / "srv", "alice", GIT_TOKEN) as server:
        yield server


@pytest.fixture
def publish_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"encryption_keys": SecretStr(KEYS), "netlify_deploy_seconds": 10}
    )


async def _rows(db: Database, sql: str) -> list[object]:
    async def work(session: AsyncSession) -> list[object]:
        return list((await session.execute(text(sql))).all())

    return await db.run(work)


async def _project(db: Database) -> tuple[UserPublic, ProjectPublic]:
    user = await get_or_create_user(db, name="alice")
    project = await create_project(db, user_id=user.id, name="Harbor Lane Bakery")
    await save_snapshot(db, project_id=project.id, changes=SITE, summary="First bakery pages")
    await save_snapshot(
        db,
        project_id=project.id,
        changes={"about.html": None, "index.html": b"<h1>v2</h1>\n"},
        summary="Drop the about page",
    )
    return user, project


async def test_generic_remote_keeps_its_password_sealed_and_grows_one_commit_a_version(
    db: Database,
    publish_settings: Settings,
    git_server: GitServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    user, project = await _project(db)
    registry = get_publisher_registry()
    url = git_server.url("bakery.git")
    options = {"url": url, "username": "alice", "password": GIT_TOKEN}
    first = await publish_version(
        db,
        publish_settings,
        registry=registry,
        user=user,
        project=project,
        publisher="git",
        version=1,
        options=options,
    )
    assert (first.status, first.url, first.version) == ("ready", url, 1)
    # The password was stored sealed: the second push needs no options at all.
    second = await publish_version(
        db, publish_settings, registry=registry, user=user, project=project, publisher="git"
    )
    assert second.version == 2 and second.detail["pushed"] is True
    repo = await asyncio.to_thread(
        clone, url.replace("http://", f"http://alice:{GIT_TOKEN}@"), tmp_path / "clone.git"
    )
    assert files_at(repo, "main~1") == SITE
    assert files_at(repo, "main") == {k: v for k, v in SITE.items() if k != "about.html"} | {
        "index.html": b"<h1>v2</h1>\n"
    }
    assert [line.split("|")[1] for line in log(repo)] == [
        "Drop the about page",
        "First bakery pages",
    ]
    assert log(repo)[0].startswith(f"alice <{user.id}@users.builder.invalid>")
    [target] = await list_publish_targets(db, project_id=project.id)
    assert target.has_credentials and "password" not in target.config
    assert GIT_TOKEN not in str(await _rows(db, "SELECT secret, config::text FROM publish_targets"))

    with pytest.raises(PublishFailed, match="git ls-remote failed") as refused:
        await publish_version(
            db,
            publish_settings,
            registry=registry,
            user=user,
            project=project,
            publisher="git",
            options={"password": GIT_TOKEN + "x"},
        )
    assert GIT_TOKEN not in refused.value.message
    latest = await list_publications(db, project_id=project.id)
    assert [p.status for p in latest] == ["error", "ready", "ready"]
    assert latest[0].error and GIT_TOKEN not in latest[0].error
    with pytest.raises(InvalidInput, match="not in its URL"):
        await publish_version(
            db,
            publish_settings,
            registry=registry,
            user=user,
            project=project,
            publisher="git",
            options={"url": url.replace("http://", "http://a:b@")},
        )
    assert not any(c in caplog.text for c in CANARIES)


async def test_github_creates_the_repository_when_asked_and_pushes_as_the_user(
    db: Database,
    publish_settings: Settings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    user, project = await _project(db)
    (tmp_path / "srv").mkdir()
    with (
        GitServer(tmp_path / "srv", "x-access-token", GITHUB_TOKEN) as git,
        FakeGitHub(GITHUB_TOKEN, git) as github,
    ):
        settings = publish_settings.model_copy(update={"github_api_url": github.url})
        registry = get_publisher_registry()

        async def push(**options: object) -> PublicationPublic:
            return await publish_version(
                db,
                settings,
                registry=registry,
                user=user,
                project=project,
                publisher="github",
                options=options,
            )

        with pytest.raises(InvalidInput, match="GitHub is not connected"):
            await push()
        keyring = Keyring.from_settings(settings)
        await store_integration(
            db, user_id=user.id, provider="github", access_token=GITHUB_TOKEN, keyring=keyring
        )
        with pytest.raises(InvalidInput, match="alice/harbor-lane-bakery does not exist"):
            await push()
        done = await push(create=True, private=True)
        assert done.url == "https://github.test/alice/harbor-lane-bakery"
        assert done.detail["created"] is True
        assert github.repos["alice/harbor-lane-bakery"]["private"] is True
        again = await push()  # remembered: no second creation, nothing new to push
        assert again.detail["pushed"] is False and again.detail["created"] is False
        assert github.requests.count("POST /user/repos") == 1
        authed = f"http://x-access-token:{GITHUB_TOKEN}@"
        await asyncio.to_thread(
            clone,
            git.url("alice-harbor-lane-bakery.git").replace("http://", authed),
            tmp_path / "gh.git",
        )
        assert files_at(tmp_path / "gh.git", "main") == {
            k: v for k, v in SITE.items() if k != "about.html"
        } | {"index.html": b"<h1>v2</h1>\n"}
        assert log(tmp_path / "gh.git") == [
            "Alice Baker <42+alice@users.noreply.github.com>|Drop the about page"
        ]
    assert not any(c in caplog.text for c in CANARIES)


async def test_netlify_uploads_only_missing_digests_and_a_failure_keeps_the_old_deploy(
    db: Database,
    publish_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    user, project = await _project(db)
    with FakeNetlify(NETLIFY_TOKEN) as netlify:
        settings = publish_settings.model_copy(update={"netlify_api_url": netlify.api_url})
        registry = get_publisher_registry()
        await store_integration(
            db,
            user_id=user.id,
            provider="netlify",
            access_token=NETLIFY_TOKEN,
            keyring=Keyring.from_settings(settings),
        )

        async def deploy(version: int | None = None, **options: object) -> PublicationPublic:
            return await publish_version(
                db,
                settings,
                registry=registry,
                user=user,
                project=project,
                publisher="netlify",
                version=version,
                options=options,
            )

        first = await deploy(1, site_name="harbor-lane")
        assert first.url == "https://harbor-lane.netlify.test"
        site_id = first.detail["site_id"]
        assert netlify.served(site_id) == SITE
        # five files, four distinct digests: each uploaded once
        assert first.detail["uploaded"] == 4 and len(netlify.uploads) == 4

        netlify.uploads.clear()
        await save_snapshot(
            db,
            project_id=project.id,
            summary="New pages",
            changes={"menu.html": b"<ul>menu</ul>", "contact.html": b"<p>call</p>"},
        )
        netlify.fail_upload = "menu.html"
        with pytest.raises(PublishFailed, match=r"upload of menu\.html failed") as failed:
            await deploy()
        assert "previous deploy still serves" in failed.value.message
        assert netlify.served(site_id) == SITE  # version 1 still serves
        history = await list_publications(db, project_id=project.id, publisher="netlify")
        assert [p.status for p in history] == ["error", "ready"]
        assert "menu.html" in (history[0].error or "")

        netlify.fail_upload = None
        netlify.uploads.clear()
        third = await deploy()
        assert sorted(netlify.uploads) == ["/menu.html"]  # contact.html arrived before
        assert third.detail["uploaded"] == 1
        assert netlify.served(site_id) == {k: v for k, v in SITE.items() if k != "about.html"} | {
            "index.html": b"<h1>v2</h1>\n",
            "menu.html": b"<ul>menu</ul>",
            "contact.html": b"<p>call</p>",
        }
        assert len(netlify.sites) == 1  # the site id was remembered
    assert not any(c in caplog.text for c in CANARIES)
