"""Previews through any replica: two real servers on one database, behind haproxy.

Replica A (127.0.0.1) runs the project's Vite dev server. The browser plays another
machine: every ``*.preview.test`` name resolves to 127.0.0.2, where replica B and the
load balancer (haproxy, round-robin over A and B) listen. B forwards what it does not
hold to A's advertised address; a third replica with forwarding off answers 421.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from builder.persistence.database import Database
from builder.persistence.snapshots import save_snapshot
from builder.preview.gateway import HOP_HEADER
from builder.preview.tokens import PreviewSigner, preview_key
from builder.settings import Settings
from tests.http.server import ServerProcess, free_port
from tests.http.vite import edit_script, vite_project
from tests.support.browser import chromium
from tests.support.database import clone_database
from tests.support.services import delete_redis_prefix, drop_database

pytestmark = pytest.mark.slow

SECRET = "replica-preview-secret"
OTHER_MACHINE = "127.0.0.2"


@dataclass(frozen=True)
class Cluster:
    a: ServerProcess
    """Runs the dev server."""
    b: ServerProcess
    """Forwards to A (on the browser's side of the network)."""
    c: ServerProcess
    """Forwarding off."""
    balancer_port: int
    key: str


def _haproxy(directory: Path, port: int, backends: list[ServerProcess]) -> subprocess.Popen[bytes]:
    servers = "\n".join(f"    server r{i} {s.host}:{s.port}" for i, s in enumerate(backends))
    config = directory / "haproxy.cfg"
    config.write_text(
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 60s\n"
        "    timeout server 60s\n    timeout tunnel 300s\n"
        f"frontend previews\n    bind {OTHER_MACHINE}:{port}\n    default_backend replicas\n"
        f"backend replicas\n    balance roundrobin\n{servers}\n"
    )
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    with (directory / "haproxy.log").open("wb") as log:
        process = subprocess.Popen([haproxy, "-f", str(config), "-db"], stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://{OTHER_MACHINE}:{port}/api/health", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("haproxy did not start")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, migrated_template: str) -> Iterator[Cluster]:
    url = clone_database(migrated_template)
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    balancer_port = free_port()
    env = {
        "BUILDER_ENVIRONMENT": "development",
        "BUILDER_ALLOW_ANONYMOUS": "false",
        "BUILDER_SECRET_KEY": SECRET,
        "BUILDER_PREVIEW_BASE_URL": f"http://{{token}}.preview.test:{balancer_port}",
        "BUILDER_MODEL": edit_script(tmp_path_factory.mktemp("script")),
        "BUILDER_RATE_LIMIT_DEFAULT": "100000/minute",
        "BUILDER_RATE_LIMIT_CHAT": "100000/minute",
        "BUILDER_TIMEOUT_DEV_SERVER": "120",
        # Vite runs from a cache outside the workspace (see test_preview).
        "BUILDER_SANDBOX_BACKEND": "local-unconfined",
    }
    servers = []
    replicas = (("a", "127.0.0.1", "true"), ("b", OTHER_MACHINE, "true"))
    for name, host, forward in (*replicas, ("c", OTHER_MACHINE, "false")):
        server = ServerProcess(
            database_url=url,
            data_dir=tmp_path_factory.mktemp(f"replica-{name}") / "data",
            redis_prefix=prefix,
            env={**env, "BUILDER_PREVIEW_FORWARD": forward},
            host=host,
        )
        server.env["BUILDER_ADVERTISE_URL"] = server.url
        servers.append(server)
    balancer = None
    try:
        for server in servers:
            server.start()
        a, b, c = servers
        balancer = _haproxy(tmp_path_factory.mktemp("haproxy"), balancer_port, [a, b])
        yield Cluster(a, b, c, balancer_port, a.new_key("alice"))
    finally:
        if balancer is not None:
            balancer.terminate()
            balancer.wait(10)
        for server in servers:
            server.stop()
        drop_database(url)
        delete_redis_prefix(prefix)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium on "another machine": every preview host resolves to 127.0.0.2."""
    with chromium(f"--host-resolver-rules=MAP *.preview.test {OTHER_MACHINE}") as launched:
        yield launched


@pytest.fixture(scope="module")
def project(cluster: Cluster) -> tuple[str, str]:
    """A Vite project whose dev server A runs: its id and its preview URL."""
    with cluster.a.client(cluster.key) as on_a:
        pid = on_a.post("/api/projects", json={"name": "vite"}).json()["id"]
        files = vite_project(cluster.a.url)

        async def seed(db: Database) -> None:
            await save_snapshot(db, project_id=uuid.UUID(pid), changes=files)

        with ThreadPoolExecutor(1) as thread:  # Playwright's sync API holds this thread's loop
            thread.submit(cluster.a.run, seed).result()
        started = on_a.post(f"/api/sandbox/{pid}/dev-server").json()
    assert started["running"] and started["answering"], "\n".join(started["logs"])
    url = str(started["preview_url"])
    assert re.fullmatch(rf"http://[a-z2-7]{{55}}\.preview\.test:{cluster.balancer_port}/", url)
    return pid, url


def _on(url: str, server: ServerProcess) -> str:
    """The preview URL, opened on one replica's own port."""
    return re.sub(r":\d+/$", f":{server.port}/", url)


def _count(server: ServerProcess, target: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    found = re.search(rf'builder_preview_requests_total{{target="{target}"}} ([0-9.e+]+)', text)
    return float(found.group(1)) if found else 0.0


def _get(host: str, where: ServerProcess, **headers: str) -> httpx.Response:
    return httpx.get(f"{where.url}/", headers={"host": host, **headers}, timeout=30)


def test_a_preview_opens_and_hot_reloads_through_any_replica(
    cluster: Cluster, project: tuple[str, str], browser: Browser
) -> None:
    pid, url = project
    forwarded_before = _count(cluster.b, "forwarded")
    context = browser.new_context()
    pages = {}
    sockets: list[str] = []
    for name, address in (("replica B", _on(url, cluster.b)), ("balancer", url)):
        page = context.new_page()
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.goto(address)
        page.wait_for_function("document.getElementById('app').textContent === 'version one'")
        page.evaluate("window.marker = 42")
        pages[name] = page

    # The chat goes to B; the run is worked on A, whose sandbox runs the dev server: the
    # agent edits main.js there, and Vite's update reaches both pages over WebSockets
    # that B relays to A.
    with cluster.b.client(cluster.key) as on_b:
        run = on_b.post(f"/api/projects/{pid}/chat/wait", json={"prompt": "change it"})
    assert run.status_code == 200, run.text
    assert run.json()["files_changed"] == ["main.js"], run.text
    _reports_the_public_url(cluster, pid, url)
    for page in pages.values():
        page.wait_for_function(
            "document.getElementById('app').textContent === 'version two'", timeout=30_000
        )
        assert page.evaluate("window.marker") == 42  # updated in place, not reloaded
    hmr = [s for s in sockets if s.startswith("ws://") and ".preview.test:" in s]
    assert any(f":{cluster.b.port}/" in s for s in hmr), sockets
    assert any(f":{cluster.balancer_port}/" in s for s in hmr), sockets
    context.close()
    assert _count(cluster.b, "forwarded") > forwarded_before


def _reports_the_public_url(cluster: Cluster, pid: str, url: str) -> None:
    """The run's result, its LangGraph state and the stored conversation (the tool's
    report, as chat events carried it) give the public URL, never the sandbox's port."""
    public = re.compile(rf"http://[a-z2-7]{{55}}\.preview\.test:{cluster.balancer_port}/")
    with cluster.b.client(cluster.key) as on_b:
        state = on_b.get(f"/threads/{pid}/state").json()
        conversation = on_b.get(f"/api/projects/{pid}/messages").text
    with cluster.a.client(cluster.key) as on_a:
        status = on_a.get(f"/api/sandbox/{pid}/dev-server").json()
    assert public.fullmatch(status["preview_url"]), status
    assert public.fullmatch(state["values"]["dev_server"]["preview_url"]), state["values"]
    reported = re.search(r"running on port \d+, preview (\S+?)\\n", conversation)
    assert reported is not None and public.fullmatch(reported.group(1)), conversation


def test_the_balancer_spreads_previews_over_both_replicas(
    cluster: Cluster, project: tuple[str, str]
) -> None:
    _, url = project
    host = url.split("//", 1)[1].rstrip("/")
    forwarded, local = _count(cluster.b, "forwarded"), _count(cluster.a, "local")
    with httpx.Client(timeout=30) as client:
        balancer = f"http://{OTHER_MACHINE}:{cluster.balancer_port}/main.js"
        answers = [client.get(balancer, headers={"host": host}).status_code for _ in range(10)]
    assert answers == [200] * 10
    assert _count(cluster.b, "forwarded") - forwarded >= 4  # about half went to B
    assert _count(cluster.a, "local") - local == 10  # and A served every one


def test_a_hop_is_proved_and_never_forwarded_again(
    cluster: Cluster, project: tuple[str, str]
) -> None:
    _, url = project
    host = url.split("//", 1)[1].rstrip("/")
    token = host.split(".", 1)[0]
    signer = PreviewSigner(preview_key(Settings(secret_key=SECRET)), ttl=60)
    assert _get(host, cluster.b).status_code == 200  # forwarded to A

    # A request that already made its hop is served where it lands, or not at all.
    again = _get(host, cluster.b, **{HOP_HEADER: signer.hop(token)})
    assert (again.status_code, again.text) == (404, "not found\n")
    assert _get(host, cluster.a, **{HOP_HEADER: signer.hop(token)}).status_code == 200
    # A proof not made with the replicas' key is refused even where the dev server runs.
    forged = PreviewSigner(b"k" * 32, ttl=60).hop(token)
    assert _get(host, cluster.a, **{HOP_HEADER: forged}).status_code == 404
    assert _get(host, cluster.b, **{HOP_HEADER: "1"}).status_code == 404
    # An invalid token is not forwarded either.
    assert _get("a" * 55 + ".preview.test", cluster.b).status_code == 404


def test_with_forwarding_off_a_replica_says_where_to_go(
    cluster: Cluster, project: tuple[str, str]
) -> None:
    _, url = project
    host = url.split("//", 1)[1].rstrip("/")
    misdirected = _get(host, cluster.c)
    assert misdirected.status_code == 421
    assert misdirected.headers["x-builder-replica"] == cluster.a.url
    assert misdirected.text == f"this preview is served by the replica at {cluster.a.url}\n"
    assert _count(cluster.c, "misdirected") >= 1
