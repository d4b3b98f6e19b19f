"""The HTTP service: a FastAPI app for hosted operators (``builder serve``)."""

from __future__ import annotations

from builder.http.app import create_app

__all__ = ["create_app"]
