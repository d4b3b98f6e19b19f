"""Files over HTTP: trees and contents of versions, diffs, restoring a version."""

from __future__ import annotations

import base64
import uuid

from builder.persistence.database import Database
from builder.persistence.snapshots import save_snapshot
from builder.sandbox.paths import STATE_DIR
from tests.http.server import ServerProcess


def _versions(server: ServerProcess, project_id: str) -> None:
    pid = uuid.UUID(project_id)

    async def work(db: Database) -> None:
        await save_snapshot(
            db, project_id=pid, changes={"index.html": b"<h1>v1</h1>\n", "logo.png": b"\x89PNG\0"}
        )
        await save_snapshot(
            db, project_id=pid, changes={"index.html": b"<h1>v2</h1>\n", "about.html": b"a\n"}
        )

    server.run(work)


def test_tree_content_snapshots_and_diff(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("files")) as client:
        pid = client.post("/api/projects", json={"name": "f"}).json()["id"]
        empty = client.get(f"/api/projects/{pid}/files").json()
        assert empty == {"version": 0, "files": []}
        _versions(dev_server, pid)
        latest = client.get(f"/api/projects/{pid}/files").json()
        assert latest["version"] == 2
        assert [f["path"] for f in latest["files"]] == ["about.html", "index.html", "logo.png"]
        first = client.get(f"/api/projects/{pid}/files", params={"version": 1}).json()
        assert [f["path"] for f in first["files"]] == ["index.html", "logo.png"]
        text = client.get(f"/api/projects/{pid}/files/index.html", params={"version": 1}).json()
        assert (text["encoding"], text["content"], text["version"]) == ("utf-8", "<h1>v1</h1>\n", 1)
        binary = client.get(f"/api/projects/{pid}/files/logo.png").json()
        assert binary["encoding"] == "base64"
        assert base64.b64decode(binary["content"]) == b"\x89PNG\0"
        missing = client.get(f"/api/projects/{pid}/files/nope.txt")
        assert missing.status_code == 404
        escape = client.get(f"/api/projects/{pid}/files/..%2F..%2Fetc%2Fpasswd")
        assert escape.status_code in (404, 422)
        versions = client.get(f"/api/projects/{pid}/snapshots").json()["items"]
        assert [v["version"] for v in versions] == [2, 1]
        diff = client.get(
            f"/api/projects/{pid}/snapshots/diff", params={"from_version": 1, "to_version": 2}
        ).json()
        assert (diff["added"], diff["removed"], diff["modified"]) == (
            ["about.html"],
            [],
            ["index.html"],
        )
        assert "-<h1>v1</h1>\n+<h1>v2</h1>" in diff["patch"]
        gone = client.get(f"/api/projects/{pid}/files", params={"version": 9})
        assert gone.status_code == 404


def test_restore_saves_the_old_version_as_the_newest_and_writes_the_sandbox(
    dev_server: ServerProcess,
) -> None:
    with dev_server.client(dev_server.new_key("restore")) as client:
        pid = client.post("/api/projects", json={"name": "r"}).json()["id"]
        _versions(dev_server, pid)
        restored = client.post(f"/api/projects/{pid}/restore", json={"version": 1})
        assert restored.json() == {"restored_version": 1, "new_version": 3, "files": 2}
        latest = client.get(f"/api/projects/{pid}/files").json()
        assert [f["path"] for f in latest["files"]] == ["index.html", "logo.png"]
        content = client.get(f"/api/projects/{pid}/files/index.html").json()["content"]
        assert content == "<h1>v1</h1>\n"
        again = client.post(f"/api/projects/{pid}/restore", json={"version": 3}).json()
        assert again["new_version"] is None
        assert client.post(f"/api/projects/{pid}/restore", json={"version": 7}).status_code == 404
    workspace = dev_server.data_dir / "workspaces" / pid
    files = sorted(p.name for p in workspace.iterdir() if p.name != STATE_DIR)
    assert files == ["index.html", "logo.png"]
    assert (workspace / "index.html").read_text() == "<h1>v1</h1>\n"


def test_a_hand_edit_is_compare_and_swap_against_the_latest_version(
    dev_server: ServerProcess,
) -> None:
    with dev_server.client(dev_server.new_key("hand-edit")) as client:
        pid = client.post("/api/projects", json={"name": "h"}).json()["id"]
        _versions(dev_server, pid)
        read = client.get(f"/api/projects/{pid}/files/index.html").json()
        url = f"/api/projects/{pid}/files/index.html"
        saved = client.put(url, json={"content": "<h1>mine</h1>\n", "base_sha256": read["sha256"]})
        assert saved.status_code == 200, saved.text
        assert saved.json()["version"] == 3
        # A second edit made on what was read before the first is refused, not applied.
        stale = client.put(url, json={"content": "<h1>lost</h1>\n", "base_sha256": read["sha256"]})
        assert stale.status_code == 409
        assert stale.json()["error"]["code"] == "concurrent_modification"
        assert "changed since it was read" in stale.json()["error"]["message"]
        assert client.get(url).json()["content"] == "<h1>mine</h1>\n"
        # A new file names no base; naming one for a file that does not exist is refused.
        new = f"/api/projects/{pid}/files/pages/new.html"
        assert (
            client.put(
                new, json={"content": "x", "base_sha256": saved.json()["sha256"]}
            ).status_code
            == 409
        )
        assert client.put(new, json={"content": "x", "base_sha256": ""}).json()["version"] == 4
        same = client.put(
            url, json={"content": "<h1>mine</h1>\n", "base_sha256": saved.json()["sha256"]}
        )
        assert same.json()["version"] is None
        for bad in ({"content": "x", "base_sha256": "nope"}, {"content": "x"}):
            assert client.put(url, json=bad).status_code == 422
        outside = client.put(
            f"/api/projects/{pid}/files/..%2F..%2Fetc", json={"content": "x", "base_sha256": ""}
        )
        assert outside.status_code in (400, 422), outside.text
        assert client.get(f"/api/projects/{pid}/snapshots?limit=1").json()["items"][0][
            "summary"
        ] == ("edited pages/new.html by hand")
    workspace = dev_server.data_dir / "workspaces" / pid
    assert (workspace / "index.html").read_text() == "<h1>mine</h1>\n"
    assert (workspace / "pages" / "new.html").read_text() == "x"


def test_export_streams_the_version_as_a_zip_to_its_owner_only(dev_server: ServerProcess) -> None:
    import io
    import zipfile

    with dev_server.client(dev_server.new_key("export")) as client:
        pid = client.post("/api/projects", json={"name": "z"}).json()["id"]
        _versions(dev_server, pid)
        response = client.get(f"/api/projects/{pid}/export", params={"version": 1})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            files = {name: archive.read(name) for name in archive.namelist()}
        assert files == {"index.html": b"<h1>v1</h1>\n", "logo.png": b"\x89PNG\0"}
        missing = client.get(f"/api/projects/{pid}/export", params={"version": 9})
        assert missing.status_code == 404
    with dev_server.client(dev_server.new_key("export-other")) as other:
        assert other.get(f"/api/projects/{pid}/export").status_code == 404


def test_export_as_tar_gz_gives_the_same_files(dev_server: ServerProcess) -> None:
    import io
    import tarfile

    with dev_server.client(dev_server.new_key("export-tar")) as client:
        pid = client.post("/api/projects", json={"name": "t"}).json()["id"]
        _versions(dev_server, pid)
        response = client.get(f"/api/projects/{pid}/export", params={"format": "tar.gz"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/gzip"
        assert response.headers["content-disposition"].endswith('.tar.gz"')
        with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
            files = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}  # type: ignore[union-attr]
        assert files == {
            "about.html": b"a\n",
            "index.html": b"<h1>v2</h1>\n",
            "logo.png": b"\x89PNG\0",
        }
        again = client.get(f"/api/projects/{pid}/export", params={"format": "tar.gz"})
        assert again.content == response.content  # reproducible bytes
        odd = client.get(f"/api/projects/{pid}/export", params={"format": "rar"})
        assert odd.status_code == 422


BUILD_SCRIPT = b"""import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
mkdirSync("dist/assets", { recursive: true });
const page = readFileSync("src/page.html", "utf8");
writeFileSync("dist/index.html", page.replace("%TITLE%", "Built"));
writeFileSync("dist/assets/app.js", "console.log(1);\\n");
"""


def test_built_export_runs_the_build_in_the_sandbox(dev_server: ServerProcess) -> None:
    import io
    import zipfile

    with dev_server.client(dev_server.new_key("export-built")) as client:
        pid = client.post("/api/projects", json={"name": "b"}).json()["id"]
        static = client.get(f"/api/projects/{pid}/export", params={"built": "true"})
        assert static.status_code == 404  # no version yet
        _versions(dev_server, pid)
        refused = client.get(f"/api/projects/{pid}/export", params={"built": "true"})
        assert refused.status_code == 422
        assert "does not build (no package.json)" in refused.json()["error"]["message"]

        async def add_build(db: Database) -> None:
            await save_snapshot(
                db,
                project_id=uuid.UUID(pid),
                changes={
                    # The build output is ignored (left out of listings): export reads it.
                    ".gitignore": b"dist/\n",
                    "package.json": b'{"name": "b", "private": true, '
                    b'"scripts": {"build": "node build.mjs"}}',
                    "build.mjs": BUILD_SCRIPT,
                    "src/page.html": b"<title>%TITLE%</title>",
                },
            )

        dev_server.run(add_build)
        response = client.get(f"/api/projects/{pid}/export", params={"built": "true"})
        assert response.status_code == 200, response.text
        assert response.headers["content-disposition"].endswith('-dist.zip"')
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            files = {name: archive.read(name) for name in archive.namelist()}
        assert files == {
            "assets/app.js": b"console.log(1);\n",
            "index.html": b"<title>Built</title>",
        }
        old = client.get(f"/api/projects/{pid}/export", params={"built": "true", "version": 1})
        assert old.status_code == 409
        assert "latest version (3) only" in old.json()["error"]["message"]
