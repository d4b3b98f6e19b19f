"""The one error mapping: every builder error has its status, and nothing leaks."""

from __future__ import annotations

import inspect

import pytest
from fastapi import FastAPI

import builder.errors as errors
from builder.errors import BuilderError, DependencyUnavailable, ProviderError
from builder.http.errors import status_for
from builder.settings import Settings
from tests.http.inprocess import running_app

EXPECTED = {
    "AlreadyExists": 409,
    "BuilderError": 500,
    "ConcurrentModification": 409,
    "StaleWorkspace": 409,
    "ConfigurationError": 500,
    "Conflict": 409,
    "DecryptionFailed": 500,
    "DependencyUnavailable": 503,
    "DuplicateTool": 409,
    "FileTooLarge": 413,
    "Forbidden": 403,
    "ImageTooLarge": 413,
    "InvalidImage": 422,
    "InvalidInput": 422,
    "InvalidTool": 422,
    "LimitExceeded": 422,
    "LockTimeout": 504,
    "NotFound": 404,
    "OperationTimeout": 504,
    "PathOutsideSandbox": 422,
    "ProviderError": 502,
    "PublishFailed": 502,
    "QuotaExceeded": 413,
    "RateLimited": 429,
    "RequestTooLarge": 413,
    "RunInProgress": 409,
    "SearchTextNotFound": 422,
    "SearchTextNotUnique": 422,
    "Unauthorized": 401,
    "UnsafeProductionSettings": 500,
}


def _instance(cls: type[BuilderError]) -> BuilderError:
    params = inspect.signature(cls.__init__).parameters
    samples = {
        "path": "a.txt", "reason": "r", "tool": "t", "plugin": "p", "other_plugin": "q",
        "resource": "thing", "identifier": "1", "project_id": "p1", "size": 2, "limit": 1,
        "operation": "db", "seconds": 1.0, "key": "k", "retry_after": 3, "dependency": "x",
        "message": "m", "key_id": "k1", "problems": ["p"], "base": 1, "latest": 2,
        "publisher": "git", "step": "push", "index": 0,
    }  # fmt: skip
    kwargs = {name: samples[name] for name in params if name in samples and name != "self"}
    if cls is errors.RateLimited:
        kwargs["limit"] = "1/minute"
    return cls(**kwargs)


def test_every_error_class_has_the_documented_status() -> None:
    classes = {
        name: cls
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, BuilderError)
    }
    assert {name: status_for(_instance(cls)) for name, cls in classes.items()} == EXPECTED


def _failing_routes(app: FastAPI) -> None:
    async def boom() -> None:
        raise RuntimeError("password=hunter2-canary at postgresql://u:pw@db.internal/x")

    async def database_down() -> None:
        raise DependencyUnavailable("postgresql", "cannot reach postgresql://u:pw@db.internal")

    async def provider_down() -> None:
        raise ProviderError("upstream said sk-secretsecretsecret123", status_code=529)

    app.add_api_route("/api/test/boom", boom)
    app.add_api_route("/api/test/db", database_down)
    app.add_api_route("/api/test/provider", provider_down)


async def test_server_errors_say_what_failed_and_nothing_more(
    migrated_db_url: str, tmp_path: object
) -> None:
    settings = Settings(database_url=migrated_db_url, model="scripted:demo", data_dir=tmp_path)  # type: ignore[arg-type]
    async with running_app(settings, customize=_failing_routes) as (_, client):
        boom = await client.get("/api/test/boom", headers={"x-request-id": "req-boom-0001"})
        db = await client.get("/api/test/db")
        provider = await client.get("/api/test/provider")
    assert boom.status_code == 500
    assert boom.json() == {
        "error": {
            "code": "internal",
            "message": "internal error; quote the request id",
            "request_id": "req-boom-0001",
        }
    }
    assert boom.headers["x-request-id"] == "req-boom-0001"
    assert db.status_code == 503
    assert db.json()["error"]["message"] == "postgresql is unavailable; retry later"
    assert provider.status_code == 502
    assert provider.json()["error"] == {
        "code": "provider_error",
        "message": "the model provider failed (status 529); retry later",
        "request_id": provider.headers["x-request-id"],
    }


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "/nowhere", None, 404, "not_found"),
        ("DELETE", "/api/health", None, 405, "method_not_allowed"),
        ("POST", "/api/projects", {"name": ""}, 422, "validation_error"),
        ("POST", "/api/projects", {"name": "x", "user_id": "someone"}, 422, "validation_error"),
        ("GET", "/api/projects?cursor=%%%", None, 422, "invalid_input"),
    ],
)
async def test_framework_errors_use_the_same_body(
    migrated_db_url: str,
    tmp_path: object,
    method: str,
    path: str,
    body: object,
    status: int,
    code: str,
) -> None:
    settings = Settings(database_url=migrated_db_url, model="scripted:demo", data_dir=tmp_path)  # type: ignore[arg-type]
    async with running_app(settings) as (_, client):
        response = await client.request(method, path, json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert (error["code"], error["request_id"]) == (code, response.headers["x-request-id"])
    assert set(error) <= {"code", "message", "request_id", "details"}
