"""Pushing a set of files to a git remote as one commit, with the git binary.

Each push works in a new temporary bare repository:

1. ``git ls-remote`` finds the branch's tip (and checks the credentials);
2. ``git fetch --depth=1`` brings that tip, when the branch exists;
3. ``git fast-import`` streams every file as a blob, one at a time, and writes one
   commit whose tree is exactly the files (``deleteall`` then one ``M`` per file) and
   whose parent is the tip — so the remote's history grows by one commit per push and
   the bytes are stored as they are, with no line-ending or attribute filter;
4. when that tree equals the tip's, nothing is pushed (a retried push is a no-op);
   otherwise ``git push`` updates the branch, never forcing it.

Credentials never appear in a command line, the remote URL or an error: git asks for
them through ``GIT_ASKPASS``, a script in the temporary directory that prints two
environment variables of the git process. No global or system git configuration is
read, so no credential helper of the machine stores them either.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from builder.errors import InvalidInput, OperationTimeout, PublishFailed
from builder.publish.source import FileSource

__all__ = ["GitCredentials", "PushResult", "check_remote_url", "push_files"]

_ASKPASS = """#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "$BUILDER_GIT_USERNAME" ;;
  *) printf '%s\\n' "$BUILDER_GIT_PASSWORD" ;;
esac
"""
_BRANCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")


@dataclass(frozen=True, slots=True)
class GitCredentials:
    """HTTP basic credentials for a remote (a token is the password)."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"GitCredentials(username={self.username!r}, password='***')"


@dataclass(frozen=True, slots=True)
class PushResult:
    """What a push did."""

    commit: str
    """The branch's tip after the push."""
    branch: str
    pushed: bool
    """False when the tip already had these files (nothing was pushed)."""
    files: int


def check_remote_url(url: str) -> str:
    """A remote URL fit to push to: http(s), a host, no credentials in it.

    Raises:
        InvalidInput: Another scheme, no host, or a user or password in the URL.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInput("a git remote URL must be http(s)://host/path")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("put the remote's credentials in username and password, not in its URL")
    return url


def check_branch(branch: str) -> str:
    """A branch name git accepts and builder allows.

    Raises:
        InvalidInput: A malformed name.
    """
    if not _BRANCH.fullmatch(branch) or ".." in branch or branch.endswith((".lock", "/")):
        raise InvalidInput(f"branch {branch!r}: use letters, digits, '.', '_', '-' and '/'")
    return branch


def _quote(path: str) -> bytes:
    """A path in fast-import's C-style quoted form."""
    out = bytearray(b'"')
    for byte in path.encode("utf-8"):
        if byte in (0x22, 0x5C):
            out += b"\\" + bytes([byte])
        elif byte == 0x0A:
            out += b"\\n"
        elif byte < 0x20 or byte == 0x7F:
            out += f"\\{byte:03o}".encode()
        else:
            out.append(byte)
    out += b'"'
    return bytes(out)


def _ident(name: str, email: str) -> bytes:
    clean = re.sub(r"[<>\n]", "", name).strip() or "builder"
    address = re.sub(r"[<>\s]", "", email) or "builder@localhost"
    return f"{clean} <{address}>".encode()


class _Git:
    """Runs git in one temporary repository with the credentials in its environment."""

    def __init__(
        self, directory: Path, credentials: GitCredentials | None, *, timeout: float
    ) -> None:
        self.directory = directory
        self.timeout = timeout
        self.secrets = (
            [s for s in (credentials.password, credentials.username) if s] if (credentials) else []
        )
        askpass = directory / "askpass.sh"
        askpass.write_text(_ASKPASS)
        askpass.chmod(stat.S_IRWXU)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(directory),
            "LANG": "C",
            "GIT_DIR": str(directory / "repo.git"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": str(askpass),
            "BUILDER_GIT_USERNAME": credentials.username if credentials else "",
            "BUILDER_GIT_PASSWORD": credentials.password if credentials else "",
        }

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            "git",
            *args,
            env=self.env,
            cwd=self.directory,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )

    async def finish(
        self, process: asyncio.subprocess.Process, step: str, *, ok: tuple[int, ...] = (0,)
    ) -> tuple[int, str]:
        try:
            out, err = await asyncio.wait_for(process.communicate(), self.timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise OperationTimeout("git", self.timeout, f"git {step} timed out") from None
        code = process.returncode or 0
        if code not in ok:
            lines = [line for line in err.decode(errors="replace").splitlines() if line.strip()]
            reason = self.redact(" / ".join(lines[-3:]) or f"exit code {code}")
            raise PublishFailed("git", step, f"git {step} failed: {reason}")
        return code, out.decode(errors="replace")

    async def run(self, step: str, *args: str, ok: tuple[int, ...] = (0,)) -> tuple[int, str]:
        return await self.finish(await self.start(*args), step, ok=ok)


async def push_files(
    files: FileSource,
    *,
    url: str,
    branch: str,
    credentials: GitCredentials | None,
    author_name: str,
    author_email: str,
    message: str,
    timestamp: int,
    timeout: float = 300.0,
) -> PushResult:
    """Commit ``files`` on top of ``branch`` of the remote at ``url`` and push it.

    Args:
        files: What the commit's tree holds, exactly.
        url: The remote (http or https, no credentials in it).
        branch: The branch to grow (created when missing).
        credentials: Basic credentials, or None for a remote that needs none.
        author_name: The commit's author and committer.
        author_email: Their address.
        message: The commit message.
        timestamp: The commit time, seconds since the epoch (UTC).
        timeout: Seconds each git command may take.

    Raises:
        InvalidInput: A bad URL or branch name, or no files.
        PublishFailed: A git step failed (credentials refused, remote unreachable, the
            branch moved meanwhile); the message names the step, never a credential.
        OperationTimeout: A git step ran past ``timeout``.
    """
    check_remote_url(url)
    check_branch(branch)
    paths = await files.paths()
    if not paths:
        raise InvalidInput("nothing to push: the version has no files")
    ref = f"refs/heads/{branch}"
    with tempfile.TemporaryDirectory(prefix="builder-git-") as temp:
        git = _Git(Path(temp), credentials, timeout=timeout)
        await git.run("init", "init", "--quiet", "--bare", str(Path(temp) / "repo.git"))
        _, listed = await git.run("ls-remote", "ls-remote", "--heads", url, ref)
        tip = listed.split()[0] if listed.strip() else None
        if tip is not None:
            await git.run("fetch", "fetch", "--quiet", "--depth=1", "--no-tags", url, ref)
        process = await git.start("fast-import", "--quiet", "--date-format=raw", "--done")
        assert process.stdin is not None
        try:
            for mark, path in enumerate(paths, start=1):
                data = await files.read(path)
                process.stdin.write(b"blob\nmark :%d\ndata %d\n" % (mark, len(data)))
                process.stdin.write(data)
                process.stdin.write(b"\n")
                del data
                await process.stdin.drain()
            who = _ident(author_name, author_email) + b" %d +0000\n" % timestamp
            text = message.encode("utf-8")
            header = b"commit %s\nauthor %s" % (ref.encode(), who)
            header += b"committer %s" % who + b"data %d\n" % len(text) + text + b"\n"
            if tip is not None:
                header += b"from %s\n" % tip.encode()
            process.stdin.write(header + b"deleteall\n")
            for mark, path in enumerate(paths, start=1):
                process.stdin.write(b"M 100644 :%d %s\n" % (mark, _quote(path)))
            process.stdin.write(b"\ndone\n")
            await process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # fast-import stopped early; finish() reports its error
        await git.finish(process, "fast-import")
        _, commit = await git.run("rev-parse", "rev-parse", ref)
        commit = commit.strip()
        if tip is not None:
            _, trees = await git.run(
                "rev-parse", "rev-parse", f"{commit}^{{tree}}", f"{tip}^{{tree}}"
            )
            new_tree, old_tree = trees.split()
            if new_tree == old_tree:
                return PushResult(commit=tip, branch=branch, pushed=False, files=len(paths))
        await git.run("push", "push", "--quiet", "--no-verify", url, f"{ref}:{ref}")
        return PushResult(commit=commit, branch=branch, pushed=True, files=len(paths))
