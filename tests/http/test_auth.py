"""Authentication against real servers: every protected route, generated from the app's
route table, refuses missing, wrong and revoked keys; another user's project is a 404."""

from __future__ import annotations

import uuid

import pytest

from builder.settings import Settings
from tests.http.conftest import ENCRYPTION_KEY
from tests.http.routes import Endpoint, endpoints
from tests.http.server import ServerProcess

PUBLIC = {
    Endpoint("GET", "/"),
    Endpoint("POST", "/api/sign-in"),
    Endpoint("GET", "/api/health"),
    Endpoint("GET", "/api/health/ready"),
    Endpoint("GET", "/metrics"),
    Endpoint("GET", "/api/integrations/{provider}/callback"),
}
PRODUCTION = Settings(environment="production", encryption_keys=ENCRYPTION_KEY)
PROTECTED = [e for e in endpoints(PRODUCTION) if e not in PUBLIC]


def _call(server: ServerProcess, endpoint: Endpoint, *, key: str | None = None, **kw: object):
    with server.client(key) as client:
        return client.request(
            endpoint.method,
            endpoint.path(kw.pop("project_id", None)),  # type: ignore[arg-type]
            json={} if endpoint.has_body else None,
            **kw,  # type: ignore[arg-type]
        )


def test_the_public_routes_are_the_probes_metrics_oauth_callback_and_studio_sign_in() -> None:
    assert set(endpoints(PRODUCTION)) - set(PROTECTED) == PUBLIC
    assert len(PROTECTED) >= 25


@pytest.mark.parametrize("endpoint", PROTECTED, ids=lambda e: f"{e.method} {e.template}")
def test_production_refuses_every_protected_route_without_a_key(
    prod_server: ServerProcess, endpoint: Endpoint
) -> None:
    response = _call(prod_server, endpoint)
    assert response.status_code == 401, response.text
    body = response.json()
    assert body == {
        "error": {
            "code": "unauthorized",
            "message": "a valid API key is required",
            "request_id": response.headers["x-request-id"],
        }
    }
    assert response.headers["www-authenticate"] == 'Bearer realm="builder"'


@pytest.mark.parametrize("endpoint", PROTECTED, ids=lambda e: f"{e.method} {e.template}")
def test_production_refuses_a_wrong_key_everywhere(
    prod_server: ServerProcess, endpoint: Endpoint
) -> None:
    response = _call(prod_server, endpoint, key="bld_" + "x" * 43)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "invalid API key"


def test_production_refuses_a_revoked_key(prod_server: ServerProcess) -> None:
    key = prod_server.new_key("revoked-user")
    with prod_server.client(key) as client:
        assert client.get("/api/projects").status_code == 200
        prod_server.revoke_keys("revoked-user")
        assert client.get("/api/projects").status_code == 401


def test_a_key_works_as_bearer_or_x_api_key_but_two_different_keys_are_refused(
    prod_server: ServerProcess,
) -> None:
    key = prod_server.new_key("header-user")
    other = prod_server.new_key("header-user")
    with prod_server.client() as client:
        assert client.get("/api/projects", headers={"x-api-key": key}).status_code == 200
        assert (
            client.get("/api/projects", headers={"authorization": f"bearer {key}"}).status_code
            == 200
        )
        both = {"x-api-key": key, "authorization": f"Bearer {key}"}
        assert client.get("/api/projects", headers=both).status_code == 200
        mixed = {"x-api-key": key, "authorization": f"Bearer {other}"}
        assert client.get("/api/projects", headers=mixed).status_code == 401
        basic = {"authorization": "Basic dXNlcjpwYXNz"}
        assert client.get("/api/projects", headers=basic).status_code == 401


def test_production_serves_no_docs_and_the_openapi_document_only_with_a_key(
    prod_server: ServerProcess,
) -> None:
    key = prod_server.new_key("docs-user")
    with prod_server.client() as client:
        assert client.get("/docs").status_code == 401  # unknown paths need a key too
        assert client.get("/openapi.json").status_code == 401
    with prod_server.client(key) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/openapi.json").json()["info"]["title"] == "builder"


def test_development_without_a_key_acts_as_the_local_user_but_a_wrong_key_is_refused(
    dev_server: ServerProcess,
) -> None:
    with dev_server.client() as client:
        made = client.post("/api/projects", json={"name": "anonymous"}).json()
        assert client.get(f"/api/projects/{made['id']}").status_code == 200
    key = dev_server.new_key("someone-else")
    with dev_server.client(key) as client:
        assert client.get(f"/api/projects/{made['id']}").status_code == 404
    with dev_server.client("bld_" + "y" * 43) as client:
        assert client.get("/api/projects").status_code == 401


WITH_PROJECT = [e for e in PROTECTED if "{project_id}" in e.template]


@pytest.fixture(scope="module")
def foreign_project(dev_server: ServerProcess) -> tuple[uuid.UUID, str]:
    """A project of one user, and the key of another."""
    owner = dev_server.new_key("owner")
    with dev_server.client(owner) as client:
        project = client.post("/api/projects", json={"name": "mine"}).json()
        client.post(
            f"/api/projects/{project['id']}/messages", json={"role": "user", "content": "hi"}
        )
    return uuid.UUID(project["id"]), dev_server.new_key("intruder")


@pytest.mark.parametrize("endpoint", WITH_PROJECT, ids=lambda e: f"{e.method} {e.template}")
def test_another_users_project_is_not_found_on_every_route(
    dev_server: ServerProcess, foreign_project: tuple[uuid.UUID, str], endpoint: Endpoint
) -> None:
    project_id, intruder = foreign_project
    response = _call(dev_server, endpoint, key=intruder, project_id=project_id)
    assert response.status_code == 404, response.text
    assert response.json()["error"] == {
        "code": "not_found",
        "message": f"project {project_id} not found",
        "request_id": response.headers["x-request-id"],
    }


def test_the_owner_still_sees_the_project_the_intruder_could_not(
    dev_server: ServerProcess, foreign_project: tuple[uuid.UUID, str]
) -> None:
    project_id, _ = foreign_project
    with dev_server.client(dev_server.new_key("owner")) as client:
        messages = client.get(f"/api/projects/{project_id}/messages").json()["items"]
        assert [(m["role"], m["content"]) for m in messages] == [("user", "hi")]
