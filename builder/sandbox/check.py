"""Escape probes against the configured sandbox backend (``builder sandbox check``).

Each probe tries, from inside a sandbox command, something a confined command must not
do — read another project's workspace, the data directory or a file in the service's
home, write outside the workspace, see the host's processes or a secret in another
process's environment, reach a port on the host's loopback — and is judged from the
host: a canary read back, a file that appeared, a process left running. Resource probes
check that the limits end what they should. The outcome of each probe is compared with
what the configured backend and network promise (docs/operations.md), so a host where
bubblewrap or pasta silently stopped working fails the check.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from builder.sandbox.base import Sandbox
from builder.sandbox.factory import create_sandbox
from builder.settings import Settings

__all__ = ["Area", "ProbeResult", "expected_blocked", "run_probes"]

Area = Literal["filesystem", "processes", "network", "secrets", "resources"]

_PYTHON = "python3"
_CANARY_ENV = "BUILDER_SANDBOX_CHECK_CANARY"
_NPROC_PROBE = "start more processes than the limit"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe: what it tried, whether the attempt was blocked, what was expected."""

    area: Area
    probe: str
    blocked: bool | None
    """True: the attempt failed (isolated or limited); None: the probe could not run."""
    expected: bool | None
    """True: the backend promises to block it; False: it must work; None: no promise."""
    detail: str = ""

    @property
    def ok(self) -> bool:
        """The outcome is what the backend promises (or it promises nothing)."""
        return self.expected is None or self.blocked is None or self.blocked == self.expected


def _describe(settings: Settings, sandbox: Sandbox) -> str:
    """The sandbox the probes run in, as configured and as in effect."""
    if settings.sandbox_backend == "e2b":
        return "backend e2b (a remote VM)"
    confinement = getattr(sandbox, "confinement", None)
    if confinement is None:
        return f"backend {settings.sandbox_backend}: unconfined"
    user = confinement.user
    who = f", as uid {user.uid} on the host" if user else ""
    return (
        f"backend {settings.sandbox_backend}: confined by bubblewrap{who}, network "
        f"{confinement.network} (configured: {settings.sandbox_network})"
    )


def expected_blocked(settings: Settings, area: Area, probe: str) -> bool | None:
    """What the configured backend promises for ``probe`` (see docs/operations.md)."""
    backend, network = settings.sandbox_backend, settings.sandbox_network
    if probe == _NPROC_PROBE and os.getuid() == 0 and backend == "local-unconfined":
        return None  # Linux does not enforce RLIMIT_NPROC for root (docs/operations.md)
    if backend == "local-unconfined":
        return True if area == "resources" else None
    if probe == "outbound connection (package registry)":
        return None if backend == "e2b" or network == "none" else False
    if probe == "dev server reachable from the host":
        return False
    return not (area == "network" and backend == "local" and network == "host")


async def run_probes(settings: Settings) -> tuple[list[ProbeResult], str]:
    """Run every probe in a fresh sandbox of the configured backend.

    Returns:
        The results, and one line describing the sandbox the probes ran in.
    """
    project_id = f"sandbox-check-{uuid.uuid4().hex[:12]}"
    sandbox = await create_sandbox(settings, project_id)
    described = _describe(settings, sandbox)
    probes = _Probes(settings, sandbox)
    try:
        results = await probes.run()
    finally:
        await sandbox.close()
        probes.cleanup()
        if settings.sandbox_backend != "e2b":
            shutil.rmtree(settings.data_dir / "workspaces" / project_id, ignore_errors=True)
    return results, described


class _Probes:
    def __init__(self, settings: Settings, sandbox: Sandbox) -> None:
        self.settings = settings
        self.sandbox = sandbox
        self.token = uuid.uuid4().hex
        self.results: list[ProbeResult] = []
        self._cleanup: list[Path] = []

    def record(self, area: Area, probe: str, blocked: bool | None, detail: str = "") -> None:
        expected = expected_blocked(self.settings, area, probe)
        self.results.append(ProbeResult(area, probe, blocked, expected, detail))

    def canary(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.token)
        self._cleanup.append(path)
        return path

    def cleanup(self) -> None:
        for path in self._cleanup:
            with contextlib.suppress(OSError):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()

    async def leaks(self, command: str) -> bool:
        result = await self.sandbox.exec(command, timeout=30)
        return self.token in result.stdout

    async def run(self) -> list[ProbeResult]:
        await self.filesystem()
        await self.processes()
        await self.secrets()
        await self.network()
        await self.resources()
        return self.results

    async def filesystem(self) -> None:
        data = self.settings.data_dir
        other_dir = data / "workspaces" / f"sandbox-check-other-{self.token[:8]}"
        other = self.canary(other_dir / "secret.txt")
        self._cleanup.append(other_dir)
        self.record(
            "filesystem", "read another project's workspace", not await self.leaks(f"cat {other}")
        )
        in_data = self.canary(data / f"sandbox-check-{self.token[:8]}.txt")
        self.record("filesystem", "read the data directory", not await self.leaks(f"cat {in_data}"))
        home = self.canary(Path.home() / f".builder-sandbox-check-{self.token[:8]}")
        self.record("filesystem", "read the service's home", not await self.leaks(f"cat {home}"))
        outside = Path(tempfile.gettempdir()) / f"builder-sandbox-check-{self.token[:8]}"
        self._cleanup.append(outside)
        await self.sandbox.exec(f"echo {self.token} > {outside}", timeout=30)
        self.record("filesystem", "write outside the workspace", not outside.exists())

    async def processes(self) -> None:
        host = _host_pid_one()
        result = await self.sandbox.exec("tr '\\0' ' ' < /proc/1/cmdline", timeout=30)
        seen = result.stdout.split(" ")[0]
        self.record("processes", "see the host's processes", seen != host, f"pid 1 is {seen!r}")
        marker = f"4{uuid.uuid4().int % 10**6:06d}"
        await self.sandbox.exec(
            f"setsid sleep {marker} > /dev/null 2>&1 & sleep 0.5; echo started", timeout=30
        )
        await asyncio.sleep(0.5)
        left = _pids_running(marker)
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
        self.record("processes", "a process outlives its command", not left)

    async def secrets(self) -> None:
        os.environ[_CANARY_ENV] = self.token
        try:
            inherited = await self.leaks("env")
        finally:
            os.environ.pop(_CANARY_ENV, None)
        self.record("secrets", "inherit the service's environment", not inherited)
        stand_in = await asyncio.create_subprocess_exec(
            "sleep", "60", env={"PATH": os.defpath, _CANARY_ENV: self.token}
        )
        try:
            leaked = await self.leaks(
                f"cat /proc/{stand_in.pid}/environ /proc/{os.getpid()}/environ"
            )
        finally:
            stand_in.kill()
            await stand_in.wait()
        self.record("secrets", "read another process's environment", not leaked)

    async def network(self) -> None:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            port = listener.getsockname()[1]
            blocked = not await self.connects("127.0.0.1", port)
        self.record("network", "connect to a port on the host's loopback", blocked, str(port))
        for name, url, default in (
            ("PostgreSQL", self.settings.database_url, 5432),
            ("Redis", self.settings.redis_url, 6379),
        ):
            port = _loopback_port(url, default)
            if port is None or not _host_connects(port):
                continue  # not on this host's loopback: nothing to reach
            blocked = not await self.connects("127.0.0.1", port)
            self.record("network", f"connect to {name} on 127.0.0.1:{port}", blocked)
        outbound = await self.connects("registry.npmjs.org", 443)
        self.record("network", "outbound connection (package registry)", not outbound)
        self.record("network", "dev server reachable from the host", not await self.serves())

    async def connects(self, host: str, port: int) -> bool:
        result = await self.sandbox.exec(
            f"{_PYTHON} -c \"import socket; socket.create_connection(('{host}', {port}), 5); "
            "print('connected')\"",
            timeout=30,
        )
        return "connected" in result.stdout

    async def serves(self) -> bool:
        import httpx

        info = await self.sandbox.start_process(
            "sandbox-check", f"{_PYTHON} -m http.server {{port}} --bind 127.0.0.1"
        )
        try:
            url = info.preview_url or await self.sandbox.preview_url(info.port or 0)
            deadline = time.monotonic() + 10
            async with httpx.AsyncClient(timeout=2) as client:
                while time.monotonic() < deadline:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(url)).status_code == 200:
                            return True
                    await asyncio.sleep(0.1)
            return False
        finally:
            await self.sandbox.stop_process("sandbox-check")

    async def resources(self) -> None:
        started = time.monotonic()
        result = await self.sandbox.exec("sleep 30", timeout=1)
        took = time.monotonic() - started
        self.record(
            "resources", "a command runs past its timeout", result.timed_out, f"{took:.1f} s"
        )
        size = self.settings.sandbox_memory_bytes * 2
        result = await self.sandbox.exec(f'{_PYTHON} -c "bytearray({size})"', timeout=30)
        self.record(
            "resources", "allocate twice the memory limit", result.exit_code != 0, f"{size} bytes"
        )
        count = self.settings.sandbox_max_processes + 32
        result = await self.sandbox.exec(
            f"i=0; while [ $i -lt {count} ]; do sleep 3 & i=$((i+1)); done; echo started",
            timeout=20,
        )
        self.record(
            "resources",
            _NPROC_PROBE,
            "started" not in result.stdout or result.exit_code != 0,
            f"{count} processes{_as_whom(self.sandbox)}",
        )


def _as_whom(sandbox: Sandbox) -> str:
    """Who the process limit applies to on the host, when the service runs as root."""
    if os.getuid() != 0:
        return ""
    confinement = getattr(sandbox, "confinement", None)
    user = confinement.user if confinement is not None else None
    if user is not None:
        return f", as uid {user.uid}"
    if confinement is not None:
        return ", as root: not enforced (the sandbox user cannot reach the workspace; see the log)"
    return ", as root: not enforced"


def _host_pid_one() -> str:
    return Path("/proc/1/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")


def _pids_running(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _loopback_port(url: str | None, default: int) -> int | None:
    if url is None:
        return default
    parts = urlsplit(url)
    if parts.hostname not in {None, "localhost", "127.0.0.1", "::1"}:
        return None
    return parts.port or default


def _host_connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
    except OSError:
        return False
    return True
