"""The app's route table, as the tests walk it: every (method, path template) pair."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from fastapi.routing import APIRoute
from starlette.routing import Mount

from builder.http import create_app
from builder.settings import Settings

__all__ = ["Endpoint", "endpoints"]

_SAMPLE = {"provider": "testhub", "file_path": "index.html"}


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str

    def path(self, project_id: uuid.UUID | None = None) -> str:
        """The template with its parameters filled in."""
        path = self.template.replace(":path}", "}")
        values = {**_SAMPLE, "project_id": str(project_id or uuid.uuid4())}
        for name, value in values.items():
            path = path.replace("{" + name + "}", value)
        # Any other parameter (a thread or run id) gets an id nobody has.
        return re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), path)

    @property
    def has_body(self) -> bool:
        return self.method in {"POST", "PUT", "PATCH"}


def endpoints(settings: Settings) -> list[Endpoint]:
    """Every route the app built from ``settings`` answers, one entry per method.

    The studio's static files (a mount at ``/studio``) are files, not routes; their own
    tests cover them.
    """
    app = create_app(settings)
    found = []
    for route in app.routes:
        if isinstance(route, Mount) and route.path == "/studio":
            continue
        assert isinstance(route, APIRoute), f"unexpected route type {type(route).__name__}"
        for method in sorted(route.methods):
            found.append(Endpoint(method, route.path))
    return found
