"""A project's files: trees and contents of versions, hand edits, diffs, and restoring a version."""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from builder.errors import ConcurrentModification, RunInProgress
from builder.http.deps import DbDep, OwnedProject, ServicesDep
from builder.http.errors import ERROR_RESPONSES
from builder.http.ratelimit import rate_limited
from builder.http.schemas import (
    FileContent,
    FileTree,
    FileTreeEntry,
    FileWriteBody,
    FileWriteResult,
    RestoreBody,
    RestoreResult,
)
from builder.persistence.database import Database
from builder.persistence.files import diff_snapshots
from builder.persistence.schemas import Page, SnapshotDiff, SnapshotPublic
from builder.persistence.snapshots import (
    get_snapshot,
    list_snapshots,
    read_file,
    save_snapshot,
    tree,
)

router = APIRouter(
    prefix="/api/projects/{project_id}",
    tags=["files"],
    dependencies=[Depends(rate_limited("default"))],
    responses=ERROR_RESPONSES,
)

_MAX_VERSION = 2_147_483_647
Version = Annotated[
    int | None, Query(ge=1, le=_MAX_VERSION, description="A version; the latest when omitted.")
]


async def _resolved(db: Database, project_id: uuid.UUID, version: int | None) -> int:
    if version is not None:
        return version
    page = await list_snapshots(db, project_id=project_id, limit=1)
    return page.items[0].version if page.items else 0


@router.get("/files", response_model=FileTree)
async def file_tree(project: OwnedProject, db: DbDep, version: Version = None) -> FileTree:
    """Every file of a version, sorted by path."""
    files = await tree(db, project_id=project.id, version=version)
    return FileTree(
        version=await _resolved(db, project.id, version),
        files=[FileTreeEntry(path=p, sha256=e.sha256, size=e.size) for p, e in files.items()],
    )


@router.get("/files/{file_path:path}", response_model=FileContent)
async def file_content(
    project: OwnedProject, file_path: str, db: DbDep, version: Version = None
) -> FileContent:
    """One file of a version: text as UTF-8, anything else base64-encoded."""
    data = await read_file(db, project_id=project.id, path=file_path, version=version)
    try:
        content, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        content, encoding = base64.b64encode(data).decode("ascii"), "base64"
    return FileContent(
        path=file_path.strip("/"),
        version=await _resolved(db, project.id, version),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        encoding=encoding,
        content=content,
    )


@router.put("/files/{file_path:path}", response_model=FileWriteResult)
async def write_file(
    project: OwnedProject, file_path: str, body: FileWriteBody, services: ServicesDep
) -> FileWriteResult:
    """Save a file edited by hand as a new version, and write it into the sandbox.

    Compare-and-swap, as the agent's edits: the edit names the content it was made on
    (``base_sha256``); if the latest version holds anything else the edit is refused
    (409 ``concurrent_modification``) instead of overwriting it. 409 ``run_in_progress``
    while a run works on the project.
    """
    db = services.db
    data = body.content.encode("utf-8")
    async with services.runs.project_idle(project.id) as held:
        if not held:
            raise RunInProgress(project.id)
        path = file_path.strip("/")
        current = (await tree(db, project_id=project.id)).get(path)
        if (current.sha256 if current is not None else "") != body.base_sha256:
            raise ConcurrentModification(
                path,
                f"{path} changed since it was read (the latest version holds other content);"
                " read it again and redo the edit",
            )
        saved = await save_snapshot(
            db,
            project_id=project.id,
            changes={path: data},
            summary=f"edited {path} by hand",
            base_version=await _resolved(db, project.id, None),
        )
        await services.runs.workspaces.sync(project.id)
    return FileWriteResult(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        version=saved.version if saved is not None else None,
    )


@router.get("/snapshots", response_model=Page[SnapshotPublic])
async def snapshots(
    project: OwnedProject,
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> object:
    """The project's versions, newest first."""
    return await list_snapshots(db, project_id=project.id, limit=limit, cursor=cursor)


@router.get("/snapshots/diff", response_model=SnapshotDiff)
async def diff(
    project: OwnedProject,
    db: DbDep,
    from_version: Annotated[int, Query(ge=0, le=_MAX_VERSION, description="0 = empty.")],
    to_version: Annotated[int, Query(ge=1, le=_MAX_VERSION)],
) -> SnapshotDiff:
    """What changed from one version to another, with a unified diff of text files."""
    return await diff_snapshots(
        db, project_id=project.id, from_version=from_version, to_version=to_version
    )


@router.post("/restore", response_model=RestoreResult)
async def restore(project: OwnedProject, body: RestoreBody, services: ServicesDep) -> RestoreResult:
    """Make a version current again: saved as a new version and written to the sandbox.

    409 while a run is in progress on the project.
    """
    db = services.db
    async with services.runs.project_idle(project.id) as held:
        if not held:
            raise RunInProgress(project.id)
        await get_snapshot(db, project_id=project.id, version=body.version)
        wanted = await tree(db, project_id=project.id, version=body.version)
        latest = await tree(db, project_id=project.id)
        changes: dict[str, bytes | None] = {path: None for path in latest if path not in wanted}
        for path, entry in wanted.items():
            if latest.get(path) != entry:
                changes[path] = await read_file(
                    db, project_id=project.id, path=path, version=body.version
                )
        saved = None
        if changes:
            saved = await save_snapshot(
                db,
                project_id=project.id,
                changes=changes,
                summary=f"restored version {body.version}",
            )
        await services.runs.workspaces.sync(project.id, force=True)
    return RestoreResult(
        restored_version=body.version,
        new_version=saved.version if saved is not None else None,
        files=len(wanted),
    )
