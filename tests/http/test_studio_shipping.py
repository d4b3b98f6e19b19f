"""Shipping from the studio: a version downloaded as a zip, pushed to a real git server on
loopback, and published to the fake Netlify, each reproducing the version's files; a
publish that fails says what failed, in the dialog."""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.http.axe import axe_violations
from tests.http.conftest import NETLIFY_TOKEN
from tests.http.server import ServerProcess
from tests.http.test_studio_browser import _context, _new_user, _seed, browser, shoot
from tests.publish.test_git import clone, files_at
from tests.support.fake_hosts import FakeNetlify
from tests.support.git_server import GitServer

pytestmark = pytest.mark.slow

__all__ = ["browser", "shoot"]  # the fixtures, shared with the studio's other browser tests

GIT_PASSWORD = "studio-push-pass-5d2a"


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    (tmp_path / "srv").mkdir()
    with GitServer(tmp_path / "srv", "alice", GIT_PASSWORD) as server:
        yield server


def _site(tag: str) -> dict[str, bytes]:
    # Content unique to the test: the fake Netlify keeps every digest it ever received.
    return {
        "index.html": f"<!doctype html><title>Ship</title><h1>Harbor Lane {tag}</h1>\n".encode(),
        "about.html": f"<p>about {tag}</p>\n".encode(),
        "css/site.css": b"body { margin: 0 }\n",
        "img/logo.bin": bytes(range(256)) * 4,
    }


def test_a_version_is_downloaded_pushed_and_published_from_the_studio(
    dev_server: ServerProcess,
    netlify: FakeNetlify,
    git_server: GitServer,
    browser: Browser,
    shoot: Callable[[Page, str], None],
    tmp_path: Path,
) -> None:
    key = _new_user(dev_server)
    tag = uuid.uuid4().hex[:8]
    first, second = _site(tag), {**_site(tag), "index.html": b"<h1>second</h1>\n"}
    with dev_server.client(key) as client:
        pid = client.post("/api/projects", json={"name": "Shipping bakery"}).json()["id"]
    _seed(dev_server, pid, first, "the first site")
    _seed(dev_server, pid, second, "a second home page")

    context = _context(browser, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # The development server lets anyone in as its local user; sign in as this key's.
    page.goto(dev_server.url + "/")
    expect(page.get_by_role("heading", name="Projects", exact=True)).to_be_visible()
    signed = page.evaluate(
        """key => fetch('/api/sign-in', {method: 'POST', body: JSON.stringify({api_key: key}),
             headers: {'content-type': 'application/json'}}).then(r => r.status)""",
        key,
    )
    assert signed == 200
    page.goto(f"{dev_server.url}/#/p/{pid}")
    page.reload()  # the page starts again with this session and its CSRF token
    expect(page.get_by_role("heading", name="Shipping bakery")).to_be_visible()

    # Download: version 1 as a zip holds exactly version 1's files.
    page.get_by_role("group", name="Ship").get_by_role("button", name="Download").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Version", exact=True).select_option("1")
    assert axe_violations(page) == []
    with page.expect_download() as download:
        dialog.get_by_role("button", name="Download").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == f"project-{pid}-v1.zip"
    with zipfile.ZipFile(io.BytesIO(saved.read_bytes())) as archive:
        assert {name: archive.read(name) for name in archive.namelist()} == first
    expect(dialog.get_by_role("status")).to_contain_text(f"Downloaded project-{pid}-v1.zip")
    dialog.get_by_role("button", name="Close").click()
    expect(page.get_by_role("dialog")).to_have_count(0)

    # Push: the latest version becomes a commit on the remote, and the link is shown.
    remote = git_server.url(f"shop-{tag}.git")
    page.get_by_role("button", name="Push").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Remote", exact=True)).to_have_value("git")
    dialog.get_by_label("Remote URL").fill(remote)
    dialog.get_by_label("Username").fill("alice")
    dialog.get_by_label("Password or token").fill(GIT_PASSWORD)
    dialog.get_by_role("button", name="Push").click()
    result = dialog.get_by_role("status").filter(has_text="Pushed version 2")
    expect(result).to_be_visible(timeout=30_000)
    expect(result.get_by_role("link", name=remote)).to_have_attribute("href", remote)
    shoot(page, "project-push")
    assert axe_violations(page) == []
    authed = remote.replace("http://", f"http://alice:{GIT_PASSWORD}@")
    assert files_at(clone(authed, tmp_path / "clone.git"), "main") == second
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)

    # Publish: an upload refused half-way is shown as what failed, and nothing serves.
    page.get_by_role("button", name="Publish").click()
    dialog = page.get_by_role("dialog")
    # Netlify is not connected yet: a personal access token connects it, from here.
    expect(dialog.get_by_text("Netlify is not connected yet.")).to_be_visible()
    expect(dialog.get_by_role("button", name="Publish")).to_be_disabled()
    assert axe_violations(page) == []
    dialog.get_by_label("Netlify personal access token").fill(NETLIFY_TOKEN)
    dialog.get_by_role("button", name="Save the token").click()
    expect(dialog.get_by_text("Netlify is not connected yet.")).to_have_count(0)
    with dev_server.client(key) as client:
        assert [i["provider"] for i in client.get("/api/integrations").json()] == ["netlify"]
    netlify.fail_upload = "about.html"
    try:
        dialog.get_by_label("Site name (for a new site)").fill(f"harbor-{tag}")
        dialog.get_by_role("button", name="Publish").click()
        expect(dialog.get_by_role("alert")).to_contain_text(
            "upload of about.html failed: Netlify answered 500", timeout=30_000
        )
        expect(dialog.get_by_role("alert")).to_contain_text("the previous deploy still serves")
        expect(dialog.locator(".publication.error")).to_have_count(1)
    finally:
        netlify.fail_upload = None

    # Publishing again succeeds: the site's and this deploy's URLs are links.
    dialog.get_by_role("button", name="Publish").click()
    result = dialog.get_by_role("status").filter(has_text="Published version 2")
    expect(result).to_be_visible(timeout=30_000)
    site_url = f"https://harbor-{tag}.netlify.test"
    expect(result.get_by_role("link", name=site_url)).to_be_visible()
    deploy_link = result.get_by_role("link", name=".netlify.test").last
    deploy_url = deploy_link.get_attribute("href") or ""
    assert deploy_url.endswith(f"--harbor-{tag}.netlify.test") and "://" in deploy_url
    shoot(page, "project-publish")
    assert axe_violations(page) == []
    (site_id,) = [
        s
        for s, site in netlify.sites.items()
        if site["name"] == f"harbor-{tag}" and site["published_deploy"]
    ]
    assert netlify.served(site_id) == second
    assert errors == []
    context.close()
