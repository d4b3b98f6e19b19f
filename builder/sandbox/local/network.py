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
import threading
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


def pasta_argv(
    pasta: str, pid: int, *, forward_port: int | None = None, netns: str | None = None
) -> list[str]:
    """``pasta`` attached to the network namespace of ``pid``, forwarding at most one port.

    Args:
        pasta: The ``pasta`` executable.
        pid: A process inside the namespace (bwrap's ``child-pid``).
        forward_port: A TCP port forwarded from ``127.0.0.1`` on the host into the
            namespace (a dev server's); None forwards nothing.
        netns: The namespace as a path pasta opens; ``/proc/<pid>/ns/net`` when None.
    """
    tcp = f"127.0.0.1/{forward_port}" if forward_port else "none"
    v4, v6 = host_routes()
    # Only the families the host routes: pasta would otherwise give the namespace an
    # IPv6 route to nowhere (and keep configuring it after the IPv4 route is there).
    family = ["--ipv4-only"] if v4 and not v6 else ["--ipv6-only"] if v6 and not v4 else []
    return [
        pasta,
        "--foreground",
        "--quiet",
        "--config-net",
        *family,
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
        netns or f"/proc/{pid}/ns/net",
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


def _default_routes(proc: str) -> tuple[bool, bool]:
    """Whether the network namespace of ``/proc/<proc>`` has IPv4 and IPv6 default routes."""
    v4 = v6 = False
    with contextlib.suppress(OSError), open(f"/proc/{proc}/net/route", encoding="ascii") as f:
        next(f, None)
        v4 = any(line.split()[1:2] == ["00000000"] for line in f)
    # ::/0 through a real interface (not the "unreachable" entry on lo)
    with contextlib.suppress(OSError), open(f"/proc/{proc}/net/ipv6_route", encoding="ascii") as f:
        v6 = any(
            fields[0] == "0" * 32 and fields[1] == "00" and fields[9] != "lo"
            for fields in (line.split() for line in f)
            if len(fields) == 10
        )
    return v4, v6


_READ_SYSCALL = {"x86_64": 0, "aarch64": 63, "riscv64": 63, "ppc64le": 3, "s390x": 3}


def blocked_on(pid: int, fd: int) -> bool:
    """Whether ``pid`` waits in ``read(fd)``: bwrap's last step before the command.

    bwrap sets up the namespace's loopback before it blocks on ``--block-fd``; pasta
    brings the loopback up too, and bwrap fails ("loopback: Failed RTM_NEWADDR") when
    pasta gets there first. Where the read's syscall number is unknown this answers
    True at once.
    """
    number = _READ_SYSCALL.get(os.uname().machine)
    if number is None:
        return True
    try:
        with open(f"/proc/{pid}/syscall", encoding="ascii") as f:
            fields = f.read().split()
    except OSError:
        return True  # gone: nothing to wait for
    return len(fields) > 1 and fields[0] == str(number) and int(fields[1], 16) == fd


@functools.cache
def host_routes() -> tuple[bool, bool]:
    """Whether this host has IPv4 and IPv6 default routes (what pasta copies)."""
    return _default_routes("self")


def _configured(pid: int) -> bool:
    """pasta has set up every family the host routes (routes come last)."""
    wanted = host_routes()
    have = _default_routes(str(pid))
    return all(h for w, h in zip(wanted, have, strict=True) if w) and any(wanted)


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
    pasta: str,
    pid: int,
    *,
    block_fd: int,
    forward_port: int | None = None,
    timeout: float = READY_TIMEOUT,
) -> subprocess.Popen[bytes]:
    """Start ``pasta`` for the namespace of ``pid`` and wait until it has a default route.

    pasta starts once bwrap waits on ``block_fd`` (its ``--block-fd``), so the two
    never configure the namespace's loopback at once.

    Returns:
        The running ``pasta``; the caller stops it with :func:`stop_network` when the
        command exits.

    Raises:
        DependencyUnavailable: pasta exited or did not configure the namespace in time
            (a forwarded port already taken on the host, for one).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if blocked_on(pid, block_fd):
            break
        await asyncio.sleep(_POLL_SECONDS / 2)
    # The service opens the namespace and hands pasta the descriptor: a sandbox run as
    # another user (a root service's sandbox user) has /proc entries pasta, having
    # dropped its capabilities, could not open by path.
    netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        argv = pasta_argv(pasta, pid, forward_port=forward_port, netns=f"/proc/self/fd/{netns}")
        with tempfile.TemporaryFile() as log:
            # A plain Popen (no preexec_fn) is spawned without a fork of the service.
            helper = await asyncio.to_thread(
                subprocess.Popen,
                [*_die_with_service(), *argv],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
                pass_fds=(netns,),
            )
            _running.add(helper)
            deadline = time.monotonic() + timeout
            while not _configured(pid):
                if helper.poll() is not None or time.monotonic() > deadline:
                    helper.kill()
                    await asyncio.to_thread(helper.wait)
                    _running.discard(helper)
                    why = _failure(log, helper.returncode)
                    raise DependencyUnavailable(
                        "sandbox", f"pasta could not give the command a network: {why}"
                    )
                await asyncio.sleep(_POLL_SECONDS)
    finally:
        os.close(netns)
    return helper


_running: set[subprocess.Popen[bytes]] = set()
"""Every pasta started and not yet reaped: never collected while it runs."""


def stop_network(helper: subprocess.Popen[bytes]) -> None:
    """Kill ``pasta`` now and reap it in a thread of its own.

    pasta takes tens of milliseconds to go once killed (its buffers and sockets are
    torn down); nothing waits for that, and no event loop needs to outlive it.
    """
    helper.kill()

    def reap() -> None:
        helper.wait()
        _running.discard(helper)

    threading.Thread(target=reap, name="pasta-reaper", daemon=True).start()


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
        deadline = time.monotonic() + READY_TIMEOUT
        while not blocked_on(pid, block_r) and time.monotonic() < deadline:
            time.sleep(_POLL_SECONDS / 2)
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
            while not _configured(pid):
                if helper.poll() is not None or time.monotonic() > deadline:
                    why = _failure(log, helper.returncode)
                    return None, f"pasta cannot configure a namespace: {why}"
                time.sleep(_POLL_SECONDS)
        finally:
            helper.kill()
            helper.wait()
    return path, "pasta works"
