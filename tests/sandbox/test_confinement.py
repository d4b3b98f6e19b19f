"""Escape probes against the confined local sandbox, each with an unconfined twin.

Every probe runs the same command on both backends: confined it must fail and leave
the canary unchanged; unconfined it succeeds, which shows the probe can detect an
escape (so the confined assertion is not vacuous).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from builder.sandbox import LocalSandbox
from builder.sandbox.local.confine import bwrap_status
from builder.settings import Settings
from tests.sandbox.children import wait_until

pytestmark = pytest.mark.skipif(
    bwrap_status()[0] is None, reason=f"confinement unavailable: {bwrap_status()[1]}"
)

MiB = 1024 * 1024
CONFINED = [pytest.param(True, id="confined"), pytest.param(False, id="unconfined")]
ROOT = os.geteuid() == 0


@pytest.fixture
def settings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """As root, confined commands run as the sandbox user, who must pass through the
    data directory's parents: pytest makes its temporary directories 0700."""
    if ROOT:
        base = tmp_path_factory.getbasetemp()
        for directory in [base, *[p for p in settings.data_dir.parents if base in p.parents]]:
            directory.chmod(directory.stat().st_mode | 0o001)
    return settings


@pytest.fixture(params=CONFINED)
async def box(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[LocalSandbox]:
    # The default settings: BUILDER_SANDBOX_NETWORK=isolated, which works on this host.
    sandbox = LocalSandbox("proj-probe", settings=settings, confined=request.param)
    yield sandbox
    await sandbox.close()


def escaped(box: LocalSandbox, ok: bool) -> None:
    """Confined: the probe must have failed; unconfined: it must have worked."""
    assert ok is (box.confinement is None)


async def test_default_local_backend_is_confined(settings: Settings) -> None:
    sandbox = LocalSandbox("proj-default", settings=settings)
    assert sandbox.confinement is not None
    assert sandbox.confinement.network == "isolated"
    unconfined = settings.model_copy(update={"sandbox_backend": "local-unconfined"})
    assert LocalSandbox("proj-default", settings=unconfined).confinement is None


async def test_another_projects_workspace(box: LocalSandbox, settings: Settings) -> None:
    other = settings.data_dir / "workspaces" / "proj-other"
    other.mkdir(parents=True)
    (other / "secret.txt").write_text("other-project-canary")
    result = await box.exec(f"cat {other}/secret.txt")
    escaped(box, "other-project-canary" in result.stdout)


async def test_the_data_directory(box: LocalSandbox, settings: Settings) -> None:
    (settings.data_dir / "canary.txt").write_text("data-dir-canary")
    result = await box.exec(f"ls {settings.data_dir}; cat {settings.data_dir}/canary.txt")
    escaped(box, "data-dir-canary" in result.stdout)


@pytest.fixture
def service() -> Iterator[subprocess.Popen[bytes]]:
    """A process standing in for the service, with a secret in its environment."""
    proc = subprocess.Popen(
        ["sleep", "300"], env={"PATH": os.environ["PATH"], "BUILDER_ENCRYPTION_KEYS": "env-canary"}
    )
    yield proc
    proc.kill()
    proc.wait()


async def test_the_services_environment(
    box: LocalSandbox, service: subprocess.Popen[bytes]
) -> None:
    result = await box.exec(f"cat /proc/{service.pid}/environ; cat /proc/{os.getpid()}/environ")
    escaped(box, "env-canary" in result.stdout)


def _host_pid_one() -> bytes:
    return Path("/proc/1/cmdline").read_bytes()


async def test_pid_one_is_not_the_hosts(box: LocalSandbox) -> None:
    host = _host_pid_one()
    result = await box.exec("cat /proc/1/cmdline; echo; cat /proc/1/environ")
    escaped(box, result.stdout.split("\n")[0].encode() == host)


async def test_a_canary_in_the_services_home(box: LocalSandbox) -> None:
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    canary = home / f".builder-canary-{uuid.uuid4().hex}"
    canary.write_text("home-canary")
    try:
        result = await box.exec(f"cat {canary}")
    finally:
        canary.unlink()
    escaped(box, "home-canary" in result.stdout)


async def test_write_outside_the_workspace(box: LocalSandbox, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    await box.exec(f"echo written > {outside}")
    escaped(box, outside.exists())
    inside = await box.exec("echo ok > inside.txt && cat inside.txt")
    assert inside.stdout == "ok\n"
    assert (box.root / "inside.txt").read_text() == "ok\n"


def _connect(port: int) -> str:
    return (
        "python3 -c "
        f"\"import socket; socket.create_connection(('127.0.0.1', {port}), 3); print('connected')\""
    )


@pytest.mark.parametrize("port", [5432, 6379])
async def test_host_loopback_services(box: LocalSandbox, port: int) -> None:
    result = await box.exec(_connect(port))
    escaped(box, "connected" in result.stdout)


async def test_with_the_host_network_loopback_services_stay_reachable(
    settings: Settings,
) -> None:
    """``BUILDER_SANDBOX_NETWORK=host`` does not isolate the loopback: what
    docs/operations.md says, so it cannot silently change (and the twin of the
    isolated probes on the confined backend itself)."""
    host = settings.model_copy(update={"sandbox_network": "host"})
    box = LocalSandbox("proj-host-net", settings=host, confined=True)
    try:
        result = await box.exec(_connect(5432))
    finally:
        await box.close()
    assert box.confinement is not None and "connected" in result.stdout


@pytest.mark.parametrize("port", [5432, 6379])
async def test_a_dev_server_cannot_reach_host_loopback_services(
    box: LocalSandbox, port: int
) -> None:
    """Long-running processes get the same isolated network as commands."""
    await box.start_process("probe", f"{_connect(port)}; echo probed; sleep 30")

    async def probed() -> bool:
        return "probed" in await _logs(box, "probe")

    assert await wait_until_async(probed)
    escaped(box, "connected" in await _logs(box, "probe"))


async def _logs(box: LocalSandbox, name: str) -> str:
    info = await box.process_info(name)
    return "\n".join(info.logs) if info else ""


@pytest.mark.slow
async def test_a_registry_install_works_in_the_isolated_network(settings: Settings) -> None:
    """Outbound access through pasta: npm installs a small pinned package; the same
    install with the network cut (``none``) fails, so the probe can fail."""
    for network, works in (("isolated", True), ("none", False)):
        chosen = settings.model_copy(update={"sandbox_network": network})
        box = LocalSandbox(f"proj-npm-{network}", settings=chosen, confined=True)
        (box.root / "package.json").write_text('{"name": "probe", "private": true}')
        result = await box.exec(
            "npm install --no-audit --no-fund --fetch-retries=0 is-number@7.0.0", timeout=120
        )
        installed = (box.root / "node_modules" / "is-number" / "package.json").is_file()
        assert installed is works, result.stderr[-2000:]
        await box.close()


async def test_a_forwarded_port_with_nothing_listening_is_not_a_server(
    settings: Settings,
) -> None:
    """pasta accepts on the host's side before it connects inside: the dev-server tool
    must not take that for a server that answers."""
    from builder.tools.devserver import _answers

    box = LocalSandbox("proj-quiet", settings=settings, confined=True)
    python = "python3"
    try:
        quiet = await box.start_process("quiet", "sleep 30")
        assert quiet.port is not None
        await asyncio.sleep(0.2)
        assert not await _answers(box, quiet.port)
        serving = await box.start_process(
            "serving", f"{python} -m http.server {{port}} --bind 127.0.0.1"
        )
        assert serving.port is not None
        assert await wait_until_async(lambda: _answers(box, serving.port or 0))
    finally:
        await box.close()


async def wait_until_async(check: Callable[[], Awaitable[bool]], attempts: int = 100) -> bool:
    for _ in range(attempts):
        if await check():
            return True
        await asyncio.sleep(0.1)
    return False


@pytest.mark.slow
def test_without_pasta_isolated_falls_back_to_the_host_network(tmp_path: Path) -> None:
    """Detected at start-up: with no pasta on PATH the reason is given, by the sandbox
    and by ``builder config check``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    bwrap = bwrap_status()[0]
    assert bwrap is not None
    (bin_dir / "bwrap").symlink_to(bwrap)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    check = subprocess.run(
        [sys.executable, "-m", "builder", "config", "check"],
        env=env | {"BUILDER_DATA_DIR": str(tmp_path / "data"), "BUILDER_MODEL": "scripted:demo"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (
        "BUILDER_SANDBOX_NETWORK is isolated but pasta (Debian package passt) is not "
        "installed: confined commands use the host's network" in check.stdout + check.stderr
    )


async def test_the_services_own_port(box: LocalSandbox) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        result = await box.exec(_connect(listener.getsockname()[1]))
    escaped(box, "connected" in result.stdout)


@pytest.mark.slow
async def test_a_process_spawner_ends_with_the_timeout(box: LocalSandbox) -> None:
    """A bounded fork bomb: every child (some in new sessions) dies at the timeout."""
    marker = f"3{uuid.uuid4().int % 10**6:06d}"
    spawner = f"i=0; while [ $i -lt 50 ]; do setsid sleep {marker} & i=$((i+1)); done; wait"
    result = await box.exec(spawner, timeout=2)
    assert result.timed_out

    def survivors() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    gone = await wait_until(lambda: not survivors(), attempts=60)
    for pid in survivors():
        os.kill(pid, 9)
    escaped(box, not gone)


async def test_a_process_left_running_dies_with_the_command(box: LocalSandbox) -> None:
    marker = f"2{uuid.uuid4().int % 10**6:06d}"
    result = await box.exec(f"setsid sleep {marker} > /dev/null 2>&1 & sleep 0.5; echo started")
    assert result.stdout == "started\n"

    def running() -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
        return pids

    await asyncio.sleep(0.5)
    left = running()
    for pid in left:
        os.kill(pid, 9)
    escaped(box, bool(left))


async def test_filling_the_disk_stops_at_the_quota(settings: Settings) -> None:
    tight = settings.model_copy(update={"project_quota_bytes": 10 * MiB})
    sandbox = LocalSandbox("proj-fill", settings=tight, confined=True)
    result = await sandbox.exec(
        "head -c 20000000 /dev/zero > big.bin; head -c 20000000 /dev/zero > /tmp/big.bin"
    )
    assert result.exit_code != 0
    assert (sandbox.root / "big.bin").stat().st_size == 10 * MiB


async def test_limits_apply_inside_the_namespace(settings: Settings) -> None:
    tight = settings.model_copy(update={"sandbox_memory_bytes": 512 * MiB})
    sandbox = LocalSandbox("proj-limits", settings=tight, confined=True)
    result = await sandbox.exec("grep 'Max data size' /proc/self/limits")
    assert str(512 * MiB) in result.stdout


async def test_a_confined_dev_server_is_reachable_from_the_host(settings: Settings) -> None:
    import httpx

    sandbox = LocalSandbox("proj-serve", settings=settings, confined=True)
    (sandbox.root / "index.html").write_text("confined-page")
    python = "python3"
    info = await sandbox.start_process("dev", f"{python} -m http.server {{port}} --bind 127.0.0.1")
    try:
        url = await sandbox.preview_url(info.port or 0)
        text = ""
        async with httpx.AsyncClient(timeout=2) as client:
            for _ in range(100):
                try:
                    text = (await client.get(url)).text
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
        assert "confined-page" in text
    finally:
        await sandbox.close()


def test_production_refuses_unconfined_without_the_override(settings: Settings) -> None:
    unconfined = settings.model_copy(update={"sandbox_backend": "local-unconfined"})
    assert any("local-unconfined" in p for p in unconfined.production_problems())
    accepted = unconfined.model_copy(update={"allow_unconfined_sandbox": True})
    assert not any("local-unconfined" in p for p in accepted.production_problems())
    assert not any("local-unconfined" in p for p in settings.production_problems())


KILLED_SERVICE = """
import asyncio, sys
from builder.sandbox.local import LocalSandbox
from builder.settings import Settings

async def main() -> None:
    sandbox = LocalSandbox("killed", settings=Settings(data_dir=sys.argv[1]))
    info = await sandbox.start_process("dev", "sleep 300")
    print(info.port, flush=True)
    await asyncio.sleep(300)

asyncio.run(main())
"""


def _pasta_forwarding(port: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and f"127.0.0.1/{port}".encode() in argv:
            found.append(int(entry.name))
    return found


def test_pasta_dies_with_a_killed_service(tmp_path: Path) -> None:
    """SIGKILL leaves no cleanup to the service: pasta must not outlive it holding
    the dev server's port."""
    service = subprocess.Popen(
        [sys.executable, "-c", KILLED_SERVICE, str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert service.stdout is not None
    port = int(service.stdout.readline())
    try:
        assert _pasta_forwarding(port), "the dev server got no pasta"
    finally:
        service.kill()
        service.wait()
        service.stdout.close()
    for _ in range(100):
        if not _pasta_forwarding(port):
            break
        time.sleep(0.05)
    left = _pasta_forwarding(port)
    for pid in left:
        os.kill(pid, 9)
    assert not left


@pytest.mark.parametrize("confined", CONFINED)
async def test_the_process_limit_holds_for_a_root_service(
    settings: Settings, confined: bool
) -> None:
    """Linux exempts root from ``RLIMIT_NPROC``: a root service's confined commands run
    as the sandbox user, so the limit holds; unconfined (the twin) they are root and it
    does not. As another user both are limited, and only the confined side is checked."""
    tight = settings.model_copy(update={"sandbox_max_processes": 24})
    box = LocalSandbox("proj-nproc", settings=tight, confined=confined)
    try:
        result = await box.exec(
            "i=0; while [ $i -lt 64 ]; do sleep 3 & i=$((i+1)); done; echo started", timeout=20
        )
    finally:
        await box.close()
    started = "started" in result.stdout
    if box.confinement is None and not ROOT:
        assert not started
        return
    escaped(box, started)
    if box.confinement is not None:
        assert result.exit_code != 0 and "fork" in result.stderr, result


@pytest.mark.skipif(not ROOT, reason="the sandbox user differs only for a root service")
async def test_files_a_command_creates_belong_to_the_sandbox_user(
    box: LocalSandbox, settings: Settings
) -> None:
    """Outside the namespace a command's files are the sandbox user's, not root's; files
    the service writes are handed to that user so commands can change them, and the
    service still reads and replaces what commands made."""
    await box.write_file("src/given.txt", b"from the service\n")
    result = await box.exec("echo made > made.txt && echo more >> src/given.txt && mkdir -p d")
    assert result.ok, result
    owners = {
        name: ((box.root / name).stat().st_uid, (box.root / name).stat().st_gid)
        for name in ("made.txt", "d", "src", "src/given.txt")
    }
    sandbox_user = (settings.sandbox_uid, settings.sandbox_gid)
    if box.confinement is not None:
        assert owners == dict.fromkeys(owners, sandbox_user)
        assert (box.root.stat().st_uid, box.root.stat().st_mode & 0o777) == (sandbox_user[0], 0o700)
    else:
        assert owners == dict.fromkeys(owners, (0, 0))
    assert await box.read_file("src/given.txt") == b"from the service\nmore\n"
    await box.write_file("made.txt", b"replaced by the service\n")
    assert (await box.exec("cat made.txt")).stdout == "replaced by the service\n"


@pytest.mark.skipif(not ROOT, reason="the sandbox user differs only for a root service")
async def test_a_data_directory_the_sandbox_user_cannot_reach_keeps_root(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A workspace behind a directory the sandbox user cannot pass (pytest's 0700
    temporary directories, like /root) cannot be bound by an unprivileged bwrap: the
    sandbox runs as before and says why."""
    box = LocalSandbox("proj-hidden", settings=Settings(data_dir=tmp_path / "data"), confined=True)
    assert box.confinement is not None and box.confinement.user is None
    result = await box.exec("echo ok > f")
    assert result.ok and (box.root / "f").stat().st_uid == 0
    assert "cannot pass through" in caplog.text
