"""User-mode networking for confined commands: ``pasta`` in front of a private namespace.

With ``BUILDER_SANDBOX_NETWORK=isolated`` every confined command gets a network
namespace of its own (``bwrap --unshare-net``), and ``pasta`` (Debian package
``passt``) gives it an interface whose traffic leaves through ordinary sockets of the
service's user. Outbound connections to the internet work, so registry installs do;
the host's loopback does not exist inside (``127.0.0.1`` is the namespace's own), the
gateway address is not mapped to the host (``--no-map-gw``) and no host port is
forwarded in (``-T none -U none``). A dev server's port is forwarded the other way,
from ``127.0.0.1:<port>`` on the host into the namespace, so the preview gateway and
the screenshot tool reach it exactly as before.

The order matters: ``bwrap`` reports the namespace's pid on ``--info-fd`` and waits on
``--block-fd``; ``pasta`` attaches to that network namespace (``--netns``, without
joining the user namespace, which bwrap nests); once the namespace has a default route
the command is released. ``pasta`` is stopped when the command exits, and dies with
the service (``setpriv --pdeathsig``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import subprocess
import tempfile
import time
from typing import IO

from builder.errors import DependencyUnavailable

__all__ = [
    "READY_TIMEOUT",
    "attach_network",
    "pasta_argv",
    "pasta_status",
    "read_child_pid",
    "stop_network",
]

READY_TIMEOUT = 5.0
"""Longest wait for ``pasta`` to configure a namespace."""
_POLL_SECONDS = 0.002


def pasta_argv(pasta: str, pid: int, *, forward_port: int | None = None) -> list[str]:
    """``pasta`` attached to the network namespace of ``pid``, forwarding at most one port.

    Args:
        pasta: The ``pasta`` executable.
        pid: A process inside the namespace (bwrap's ``child-pid``).
        forward_port: A TCP port forwarded from ``127.0.0.1`` on the host into the
            namespace (a dev server's); None forwards nothing.
    """
    tcp = f"127.0.0.1/{forward_port}" if forward_port else "none"
    return [
        pasta,
        "--foreground",
        "--quiet",
        "--config-net",
        # Connections to the gateway address would otherwise reach the host's loopback.
        "--no-map-gw",
        # Nothing of the host is forwarded into the namespace ...
        "--tcp-ns",
        "none",
        "--udp-ns",
        "none",
        # ... and only the dev server's port out of it, on the host's loopback.
        "--tcp-ports",
        tcp,
        "--udp-ports",
        "none",
        # pasta drops root to nobody, who could not enter a namespace root created.
        "--runas",
        f"{os.getuid()}:{os.getgid()}",
        "--netns",
        f"/proc/{pid}/ns/net",
    ]


def read_child_pid(fd: int) -> int | None:
    """The ``child-pid`` bwrap writes on ``--info-fd`` (blocking), None when it exited first."""
    data = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        data += chunk
        try:
            info = json.loads(data)
        except ValueError:
            continue
        return int(info["child-pid"])


def _has_default_route(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/net/route", encoding="ascii") as routes:
            next(routes, None)
            return any(line.split()[1:2] == ["00000000"] for line in routes)
    except OSError:
        return False


@functools.cache
def _die_with_service() -> list[str]:
    """``setpriv --pdeathsig KILL --`` (util-linux): pasta dies with the service.

    A ``preexec_fn`` could set the same, but it makes Python fork instead of spawn,
    which costs more than pasta's whole start.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def _failure(log: IO[bytes], returncode: int | None) -> str:
    log.seek(0)
    lines = [
        line.strip()
        for line in log.read().decode(errors="replace").splitlines()
        if line.strip() and "to syslog" not in line
    ]
    return lines[-1] if lines else f"pasta exited with {returncode}"


async def attach_network(
    pasta: str, pid: int, *, forward_port: int | None = None, timeout: float = READY_TIMEOUT
) -> subprocess.Popen[bytes]:
    """Start ``pasta`` for the namespace of ``pid`` and wait until it has a default route.

    Returns:
        The running ``pasta``; the caller stops it with :func:`stop_network` when the
        command exits.

    Raises:
        DependencyUnavailable: pasta exited or did not configure the namespace in time
            (a forwarded port already taken on the host, for one).
    """
    with tempfile.TemporaryFile() as log:
        # A plain Popen (no preexec_fn) is spawned without a fork of the service.
        helper = await asyncio.to_thread(
            subprocess.Popen,
            [*_die_with_service(), *pasta_argv(pasta, pid, forward_port=forward_port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not _has_default_route(pid):
            if helper.poll() is not None or time.monotonic() > deadline:
                helper.kill()
                await asyncio.to_thread(helper.wait)
                why = _failure(log, helper.returncode)
                raise DependencyUnavailable(
                    "sandbox", f"pasta could not give the command a network: {why}"
                )
            await asyncio.sleep(_POLL_SECONDS)
    return helper


def stop_network(helper: subprocess.Popen[bytes]) -> None:
    """Kill ``pasta`` now and reap it in a worker thread.

    pasta takes tens of milliseconds to go once killed (its buffers and sockets are
    torn down); nothing waits for that.
    """
    helper.kill()
    asyncio.get_running_loop().run_in_executor(None, helper.wait)


@functools.cache
def pasta_status() -> tuple[str | None, str]:
    """``(path to pasta, reason)``: the path when isolated networking works on this host.

    Probed once per process: a namespace made by bwrap gets pasta attached and must
    receive a default route.
    """
    from builder.sandbox.local.confine import bwrap_status

    path = shutil.which("pasta")
    if path is None:
        return None, "pasta (Debian package passt) is not installed"
    bwrap, reason = bwrap_status()
    if bwrap is None:
        return None, reason
    info_r, info_w = os.pipe()
    block_r, block_w = os.pipe()
    probe = [
        bwrap,
        "--unshare-user",
        "--unshare-net",
        "--die-with-parent",
        "--ro-bind",
        "/",
        "/",
        "--info-fd",
        str(info_w),
        "--block-fd",
        str(block_r),
        "--",
        "/bin/true",
    ]
    try:
        box = subprocess.Popen(
            probe, pass_fds=(info_w, block_r), stderr=subprocess.DEVNULL, start_new_session=True
        )
    except OSError as exc:
        return None, f"bwrap could not run: {exc}"
    finally:
        os.close(info_w)
        os.close(block_r)
    try:
        pid = read_child_pid(info_r)
        if pid is None:
            return None, "bwrap cannot create a network namespace"
        return _probe_pasta(path, pid)
    finally:
        os.close(info_r)
        with contextlib.suppress(OSError):
            os.write(block_w, b"x")
        os.close(block_w)
        box.kill()
        box.wait()


def _probe_pasta(path: str, pid: int) -> tuple[str | None, str]:
    with tempfile.TemporaryFile() as log:
        try:
            helper = subprocess.Popen(
                pasta_argv(path, pid),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        except OSError as exc:
            return None, f"pasta could not run: {exc}"
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while not _has_default_route(pid):
                if helper.poll() is not None or time.monotonic() > deadline:
                    why = _failure(log, helper.returncode)
                    return None, f"pasta cannot configure a namespace: {why}"
                time.sleep(_POLL_SECONDS)
        finally:
            helper.kill()
            helper.wait()
    return path, "pasta works"
