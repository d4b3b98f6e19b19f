"""The ledger of dev servers stops only what a dead process left, never a reused pid."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from builder.sandbox.local.leftovers import ProcessLedger


def _group(seconds: int = 60) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", str(seconds)], start_new_session=True)


def _dead_owner() -> tuple[int, int]:
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid, 1


def _entry(ledger: Path, name: str, **entry: int | None) -> None:
    entries = json.loads(ledger.read_text()) if ledger.exists() else {}
    entries[name] = entry
    ledger.write_text(json.dumps(entries))


def _alive(process: subprocess.Popen[bytes]) -> bool:
    time.sleep(0.1)
    return process.poll() is None


def test_a_server_whose_owner_is_gone_is_stopped_and_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    server = _group()
    try:
        ledger = ProcessLedger(path)
        ledger.add("dev-server", server.pid)
        recorded = json.loads(path.read_text())["dev-server"]
        owner, owner_started = _dead_owner()
        _entry(path, "dev-server", **{**recorded, "owner": owner, "owner_started": owner_started})
        assert ledger.reap() == ["dev-server"]
        server.wait(timeout=5)
        assert json.loads(path.read_text() or "{}") == {}
    finally:
        server.kill()
        server.wait()


def test_a_live_owner_or_a_reused_pid_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    mine, reused = _group(), _group()
    try:
        ledger = ProcessLedger(path)
        ledger.add("dev-server", mine.pid)  # owned by this live process
        recorded = json.loads(path.read_text())["dev-server"]
        owner, owner_started = _dead_owner()
        # The pid now belongs to another process than the one recorded (start time differs).
        _entry(path, "old", pgid=reused.pid, started=recorded["started"] - 1,
               owner=owner, owner_started=owner_started)  # fmt: skip
        assert ledger.reap() == []
        assert _alive(mine) and _alive(reused)
        assert set(json.loads(path.read_text())) == {"dev-server"}
    finally:
        for process in (mine, reused):
            process.kill()
            process.wait()
