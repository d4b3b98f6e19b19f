"""Publishing over HTTP: owner only, credentials never answered, each publication
recorded with its status and link."""

from __future__ import annotations

import uuid
from pathlib import Path

from builder.persistence.database import Database
from builder.persistence.snapshots import save_snapshot
from tests.http.conftest import NETLIFY_TOKEN
from tests.http.server import ServerProcess
from tests.publish.test_git import clone, files_at
from tests.support.fake_hosts import FakeNetlify
from tests.support.git_server import GitServer

PASSWORD = "http-remote-pass-77d0"
FILES = {"index.html": b"<h1>over http</h1>\n", "css/a.css": b"a{}\n"}


def _version(server: ServerProcess, project_id: str) -> None:
    async def work(db: Database) -> None:
        await save_snapshot(
            db, project_id=uuid.UUID(project_id), changes=FILES, summary="Home page"
        )

    server.run(work)


def test_push_and_deploy_over_http(
    dev_server: ServerProcess, netlify: FakeNetlify, tmp_path: Path
) -> None:
    (tmp_path / "srv").mkdir()
    with (
        GitServer(tmp_path / "srv", "alice", PASSWORD) as git,
        dev_server.client(dev_server.new_key("publisher")) as client,
    ):
        names = [p["name"] for p in client.get("/api/publishers").json()]
        assert {"git", "github", "netlify"} <= set(names)
        pid = client.post("/api/projects", json={"name": "pub"}).json()["id"]
        _version(dev_server, pid)
        url = git.url("site.git")
        body = {"options": {"url": url, "username": "alice", "password": PASSWORD}}
        with dev_server.client(dev_server.new_key("intruder")) as other:
            assert other.post(f"/api/projects/{pid}/publish/git", json=body).status_code == 404
            assert other.get(f"/api/projects/{pid}/publish").status_code == 404
        pushed = client.post(f"/api/projects/{pid}/publish/git", json=body)
        assert pushed.status_code == 200, pushed.text
        assert pushed.json()["status"] == "ready" and pushed.json()["url"] == url
        assert PASSWORD not in pushed.text
        repo = clone(url.replace("http://", f"http://alice:{PASSWORD}@"), tmp_path / "c.git")
        assert files_at(repo, "main") == FILES

        wrong = {"options": {"password": PASSWORD + "-old"}}
        refused = client.post(f"/api/projects/{pid}/publish/git", json=wrong)
        assert refused.status_code == 502
        assert refused.json()["error"]["code"] == "publish_failed"
        assert "git ls-remote failed" in refused.json()["error"]["message"]

        missing = client.post(f"/api/projects/{pid}/publish/netlify", json={})
        assert missing.status_code == 422 and "Netlify is not connected" in missing.text
        token = client.put("/api/integrations/netlify/token", json={"access_token": NETLIFY_TOKEN})
        assert token.status_code == 200 and NETLIFY_TOKEN not in token.text
        deployed = client.post(
            f"/api/projects/{pid}/publish/netlify", json={"options": {"site_name": "pub"}}
        )
        assert deployed.status_code == 200, deployed.text
        assert deployed.json()["url"] == "https://pub.netlify.test"
        assert netlify.served(deployed.json()["detail"]["site_id"]) == FILES

        state = client.get(f"/api/projects/{pid}/publish").json()
        assert {t["publisher"]: t["has_credentials"] for t in state["targets"]} == {
            "git": True,
            "netlify": False,
        }
        statuses = [p["status"] for p in state["publications"]]
        assert statuses == [
            "ready",
            "error",
            "error",
            "ready",
        ]  # not connected, then wrong password
        assert PASSWORD not in str(state)
        odd = client.post(f"/api/projects/{pid}/publish/nowhere", json={})
        assert odd.status_code == 422 and "the publishers are:" in odd.text
    log = dev_server.log()
    assert PASSWORD not in log and NETLIFY_TOKEN not in log
