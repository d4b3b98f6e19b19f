"""Local sandbox children: timeouts kill the whole group, env is scrubbed, limits apply."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import builder.sandbox.local.processes as processes_module
from builder.errors import InvalidInput, LimitExceeded, PathOutsideSandbox
from builder.sandbox import LocalSandbox
from builder.sandbox.local.processes import ChildLimits
from builder.settings import Settings
from tests.sandbox.children import RUNAWAY, is_dead, wait_until

MiB = 1024 * 1024
SECRETS = {
    "BUILDER_X": "builder-secret-value",
    "BUILDER_E2B_API_KEY": "e2b_builder_secret",
    "OPENAI_API_KEY": "sk-openai-secret-value",
    "ANTHROPIC_API_KEY": "sk-ant-secret-value",
    "E2B_API_KEY": "e2b_secret_value",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
}


@pytest.fixture
async def sandbox(settings: Settings) -> AsyncIterator[LocalSandbox]:
    # The process-group mechanics are checked on host pids, so unconfined; the
    # confined namespace is checked in test_confinement.py.
    box = LocalSandbox("proj-1", settings=settings, confined=False)
    yield box
    await box.close()


async def read_pids(sandbox: LocalSandbox, count: int) -> list[int]:
    path = sandbox.root / "pids.txt"
    await wait_until(lambda: path.exists() and len(path.read_text().split()) >= count)
    return [int(p) for p in path.read_text().split()]


async def test_timeout_kills_the_whole_process_group(sandbox: LocalSandbox) -> None:
    result = await sandbox.exec(RUNAWAY, timeout=1.5)
    assert (result.timed_out, result.exit_code, result.ok) == (True, -1, False)
    pids = await read_pids(sandbox, 3)
    leader = int((sandbox.root / "leader.txt").read_text())
    assert len(pids) == 3
    assert await wait_until(lambda: all(is_dead(pid) for pid in [leader, *pids]))


async def test_group_kill_is_what_stops_the_children(
    sandbox: LocalSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With only the leader signalled, the children outlive the timeout."""

    def leader_only(pgid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pgid, sig)

    monkeypatch.setattr(processes_module, "signal_group", leader_only)
    result = await sandbox.exec(RUNAWAY, timeout=1.5)
    pids = await read_pids(sandbox, 3)
    try:
        assert result.timed_out is True
        assert [is_dead(pid) for pid in pids] == [False, False, False]
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def test_background_leftovers_are_killed_when_the_command_exits(
    sandbox: LocalSandbox,
) -> None:
    result = await sandbox.exec("sleep 300 & echo $! > pids.txt; echo started")
    assert (result.exit_code, result.stdout, result.timed_out) == (0, "started\n", False)
    pids = await read_pids(sandbox, 1)
    assert await wait_until(lambda: is_dead(pids[0]))


async def test_a_grandchild_that_left_the_group_does_not_hold_exec(
    sandbox: LocalSandbox,
) -> None:
    result = await sandbox.exec("setsid sleep 300 & echo $! > pids.txt; echo done", timeout=60)
    pids = await read_pids(sandbox, 1)
    try:
        assert (result.exit_code, result.timed_out, result.stdout) == (0, False, "done\n")
    finally:
        os.kill(pids[0], signal.SIGKILL)


async def test_cancelling_exec_kills_the_group(sandbox: LocalSandbox) -> None:
    task = asyncio.create_task(sandbox.exec("sleep 300 & echo $! >> pids.txt; wait"))
    pids = await read_pids(sandbox, 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_until(lambda: is_dead(pids[0]))


def _env_of(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


async def test_environment_is_scrubbed(
    sandbox: LocalSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    result = await sandbox.exec("env")
    env = _env_of(result.stdout)
    assert sorted(env) == ["HOME", "LANG", "PATH", "PWD", "TERM"]
    assert (env["HOME"], env["PWD"], env["TERM"]) == (str(sandbox.root),) * 2 + ("dumb",)
    assert [v for v in SECRETS.values() if v in result.stdout + result.stderr] == []


async def test_scrubbing_is_what_hides_the_secrets(
    sandbox: LocalSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(processes_module, "child_env", lambda home, **_: dict(os.environ))
    result = await sandbox.exec("env")
    assert sorted(v for v in SECRETS.values() if v in result.stdout) == sorted(SECRETS.values())


async def test_popen_instrumentation_cannot_add_to_the_environment(
    sandbox: LocalSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like Sentry's subprocess integration, which adds SUBPROCESS_* trace variables."""
    original = subprocess.Popen.__init__

    def injecting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["env"] = {**(kwargs.get("env") or os.environ), "INJECTED_TRACE": "leak"}
        original(self, *args, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", injecting_init)
    result = await sandbox.exec("env")
    assert sorted(_env_of(result.stdout)) == ["HOME", "LANG", "PATH", "PWD", "TERM"]
    # Without `env -i` the injected variable reaches the command.
    monkeypatch.setattr(
        processes_module, "shell_argv", lambda command, env: ["/bin/sh", "-c", command]
    )
    leaked = await sandbox.exec("env")
    assert _env_of(leaked.stdout)["INJECTED_TRACE"] == "leak"


LIMIT_ROWS = {
    "Max cpu time": "cpu",
    "Max data size": "data",
    "Max file size": "fsize",
    "Max processes": "nproc",
}


def _limits_of(text: str) -> dict[str, tuple[str, str]]:
    found = {}
    for line in text.splitlines():
        for label, key in LIMIT_ROWS.items():
            if line.startswith(label):
                soft, hard = line[len(label) :].split()[:2]
                found[key] = (soft, hard)
    return found


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[LocalSandbox]:
    tight = settings.model_copy(
        update={
            "sandbox_cpu_seconds": 7,
            "sandbox_memory_bytes": 512 * MiB,
            "project_quota_bytes": 10 * MiB,
            "sandbox_max_processes": 64,
        }
    )
    box = LocalSandbox("proj-limits", settings=tight, confined=False)
    yield box
    await box.close()


async def test_resource_limits_apply_in_the_child(limited: LocalSandbox) -> None:
    result = await limited.exec("cat /proc/self/limits")
    assert _limits_of(result.stdout) == {
        "cpu": ("7", "7"),
        "data": (str(512 * MiB), str(512 * MiB)),
        "fsize": (str(10 * MiB), str(10 * MiB)),
        "nproc": ("64", "64"),
    }
    big = await limited.exec("head -c 11000000 /dev/zero > big.bin")
    assert big.exit_code != 0
    assert (limited.root / "big.bin").stat().st_size == 10 * MiB


async def test_limits_are_set_by_the_child_setup(
    limited: LocalSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ChildLimits, "rlimits", lambda self: [])
    result = await limited.exec("cat /proc/self/limits")
    assert _limits_of(result.stdout)["fsize"] == ("unlimited", "unlimited")


async def test_output_is_capped_head_and_tail(sandbox: LocalSandbox) -> None:
    result = await sandbox.exec(
        "printf 'S'; head -c 100000 /dev/zero | tr '\\0' a; printf 'E'; "
        "head -c 3000 /dev/zero | tr '\\0' e >&2",
        output_limit=1000,
    )
    assert result.stdout == "S" + "a" * 499 + "\n[... 99002 bytes cut ...]\n" + "a" * 499 + "E"
    assert result.stderr == "e" * 500 + "\n[... 2000 bytes cut ...]\n" + "e" * 500
    assert result.truncated_bytes == 99002 + 2000


async def test_a_chatty_command_does_not_deadlock(sandbox: LocalSandbox) -> None:
    result = await sandbox.exec(
        "head -c 3000000 /dev/zero >&2 & head -c 3000000 /dev/zero; wait", output_limit=2048
    )
    assert (result.exit_code, result.truncated_bytes) == (0, 2 * 3_000_000 - 2 * 2048)


async def test_exit_code_cwd_and_bad_input(sandbox: LocalSandbox) -> None:
    await sandbox.write_file("app/x.txt", b"x")
    result = await sandbox.exec("pwd; ls; exit 3", cwd="app")
    assert (result.exit_code, result.stdout) == (3, f"{sandbox.root}/app\nx.txt\n")
    (sandbox.root / "out").symlink_to("/tmp", target_is_directory=True)
    with pytest.raises(PathOutsideSandbox):
        await sandbox.exec("pwd", cwd="out")
    with pytest.raises(PathOutsideSandbox):
        await sandbox.exec("pwd", cwd="../..")
    with pytest.raises(InvalidInput):
        await sandbox.exec("  ")


# --- long-running processes ------------------------------------------------------


async def test_dev_server_serves_the_workspace(sandbox: LocalSandbox) -> None:
    await sandbox.write_file("hello.txt", b"hello from the sandbox")
    info = await sandbox.start_process(
        "web", f"{sys.executable} -u -m http.server {{port}} --bind 127.0.0.1"
    )
    assert info.port is not None and info.preview_url == f"http://127.0.0.1:{info.port}/"
    assert (info.name, info.running, info.exit_code) == ("web", True, None)
    assert info.command.endswith(f"http.server {info.port} --bind 127.0.0.1")
    async with httpx.AsyncClient() as client:
        body = None
        for _ in range(200):
            try:
                response = await client.get(info.preview_url + "hello.txt")
            except httpx.TransportError:
                await asyncio.sleep(0.05)
                continue
            body = (response.status_code, response.text)
            break
        assert body == (200, "hello from the sandbox")

        def logged() -> bool:
            current = sandbox._processes.info("web", log_lines=50)
            return current is not None and any('"GET /hello.txt' in x for x in current.logs)

        assert await wait_until(logged)
        assert await sandbox.stop_process("web") is True
        stopped = await sandbox.process_info("web")
        assert stopped is not None and (stopped.running, stopped.exit_code) == (False, -15)
        with pytest.raises(httpx.TransportError):
            await client.get(info.preview_url + "hello.txt")
    assert await sandbox.stop_process("web") is False
    assert await sandbox.process_info("other") is None


async def test_port_is_passed_as_env_and_logs_are_a_bounded_ring(settings: Settings) -> None:
    box = LocalSandbox("proj-ring", settings=settings)
    try:
        await box.start_process(
            "counter",
            "echo port=$PORT; i=0; while [ $i -lt 700 ]; do echo line$i; i=$((i+1)); done",
            port=4321,
        )

        def finished() -> bool:
            info = box._processes.info("counter")
            return info is not None and not info.running and info.logs[-1:] == ["line699"]

        assert await wait_until(finished)
        info = await box.process_info("counter", log_lines=1000)
        assert info is not None
        assert (info.port, info.exit_code, len(info.logs)) == (4321, 0, 500)
        assert (info.logs[0], info.logs[-1]) == ("line200", "line699")
        first = await box.exec("true")
        assert first.ok
    finally:
        await box.close()


async def test_process_table_is_bounded_and_replaces_by_name(settings: Settings) -> None:
    box = LocalSandbox("proj-table", settings=settings, max_processes=2)
    try:
        a = await box.start_process("a", "echo $$ > a.pid; exec sleep 300")
        await box.start_process("b", "exec sleep 300")
        with pytest.raises(LimitExceeded) as caught:
            await box.start_process("c", "exec sleep 300")
        assert (caught.value.limit, caught.value.size) == (2, 3)
        again = await box.start_process("a", "exec sleep 300")
        assert again.running and again.started_at >= a.started_at
        assert await box.stop_process("b") is True
        await box.start_process("c", "exec sleep 300")  # b's finished slot is reused
        assert await box.process_info("b") is None
        with pytest.raises(InvalidInput):
            await box.start_process("bad name", "true")
    finally:
        await box.close()
    for name in ("a", "c"):
        info = await box.process_info(name)
        assert info is not None and info.running is False
