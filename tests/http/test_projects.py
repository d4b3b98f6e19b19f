"""Projects over HTTP: create, list (starred first, paged), read, update, star, delete."""

from __future__ import annotations

from tests.http.server import ServerProcess


def test_create_read_update_and_delete(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("projects-crud")) as client:
        made = client.post("/api/projects", json={"name": "Bakery", "description": "bread"})
        assert made.status_code == 201
        project = made.json()
        assert (project["name"], project["description"], project["starred"]) == (
            "Bakery",
            "bread",
            False,
        )
        pid = project["id"]
        assert client.get(f"/api/projects/{pid}").json() == project
        changed = client.patch(f"/api/projects/{pid}", json={"name": "Bakery 2"}).json()
        assert (changed["name"], changed["description"]) == ("Bakery 2", "bread")
        assert client.delete(f"/api/projects/{pid}").status_code == 204
        gone = client.get(f"/api/projects/{pid}")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


def test_callers_cannot_set_ids_owners_or_server_fields(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("projects-mass")) as client:
        pid = client.post("/api/projects", json={"name": "p"}).json()["id"]
        for body in (
            {"name": "p", "user_id": "00000000-0000-0000-0000-000000000000"},
            {"name": "p", "id": pid},
            {"name": "p", "starred": True},
            {"name": "p", "created_at": "2020-01-01T00:00:00Z"},
        ):
            refused = client.post("/api/projects", json=body)
            assert refused.status_code == 422, body
            assert refused.json()["error"]["code"] == "validation_error"
        for body in ({"sandbox_url": "http://evil"}, {"sandbox_id": "x"}, {"dependencies": {}}):
            assert client.patch(f"/api/projects/{pid}", json=body).status_code == 422


def test_listing_pages_with_starred_first(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("projects-list")) as client:
        ids = [client.post("/api/projects", json={"name": f"p{i}"}).json()["id"] for i in range(5)]
        starred = client.put(f"/api/projects/{ids[0]}/star").json()
        assert starred["starred"] is True
        first = client.get("/api/projects", params={"limit": 2}).json()
        second = client.get(
            "/api/projects", params={"limit": 2, "cursor": first["next_cursor"]}
        ).json()
        third = client.get(
            "/api/projects", params={"limit": 2, "cursor": second["next_cursor"]}
        ).json()
        names = [p["name"] for page in (first, second, third) for p in page["items"]]
        assert names == ["p0", "p4", "p3", "p2", "p1"]
        assert third["next_cursor"] is None
        assert client.delete(f"/api/projects/{ids[0]}/star").json()["starred"] is False
        bad = client.get("/api/projects", params={"cursor": "garbage"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"


def test_searching_by_name_ignores_case_pages_and_takes_wildcards_literally(
    dev_server: ServerProcess,
) -> None:
    with dev_server.client(dev_server.new_key("projects-search")) as client:
        for name in ("Harbor Bakery", "harbor cafe", "Mill", "50% off_sale", "500 offsale"):
            client.post("/api/projects", json={"name": name})
        found = client.get("/api/projects", params={"q": "HARBOR", "limit": 1}).json()
        rest = client.get(
            "/api/projects", params={"q": "HARBOR", "limit": 1, "cursor": found["next_cursor"]}
        ).json()
        assert [p["name"] for p in found["items"] + rest["items"]] == [
            "harbor cafe",
            "Harbor Bakery",
        ]
        assert rest["next_cursor"] is None
        literal = client.get("/api/projects", params={"q": "% off_"}).json()["items"]
        assert [p["name"] for p in literal] == ["50% off_sale"]
        assert client.get("/api/projects", params={"q": "nothing"}).json()["items"] == []
        assert client.get("/api/projects", params={"q": "a\u0000"}).status_code == 422
        assert client.get("/api/projects", params={"q": "x" * 201}).status_code == 422


def test_text_the_database_cannot_store_is_invalid_input(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("projects-nul")) as client:
        nul = client.post("/api/projects", json={"name": "a\u0000b"})
        surrogate = client.post(
            "/api/projects",
            content=b'{"name": "\\ud803"}',
            headers={"content-type": "application/json"},
        )
    assert (nul.status_code, nul.json()["error"]["code"]) == (422, "validation_error")
    assert surrogate.status_code == 422


def test_opening_a_project_records_when(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("projects-open")) as client:
        pid = client.post("/api/projects", json={"name": "Opened"}).json()["id"]
        assert client.get(f"/api/projects/{pid}").json()["last_opened_at"] is None
        opened = client.post(f"/api/projects/{pid}/open")
        assert opened.status_code == 200
        when = opened.json()["last_opened_at"]
        assert when is not None
        assert client.get(f"/api/projects/{pid}").json()["last_opened_at"] == when
        listed = client.get("/api/projects").json()["items"]
        assert [p["last_opened_at"] for p in listed if p["id"] == pid] == [when]


def test_rest_and_langgraph_threads_take_a_starter(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("starters")) as client:
        made = client.post("/api/projects", json={"name": "Astro", "starter": "astro"})
        assert made.status_code == 201, made.text
        files = client.get(f"/api/projects/{made.json()['id']}/files").json()
        assert files["version"] == 1
        assert "src/pages/index.astro" in {f["path"] for f in files["files"]}
        refused = client.post("/api/projects", json={"name": "x", "starter": "cobol"})
        assert refused.status_code == 422
        assert (
            "the starters are: astro, static, vite-react-ts" in refused.json()["error"]["message"]
        )
        thread = client.post("/threads", json={"metadata": {"name": "T", "starter": "static"}})
        assert thread.status_code == 200, thread.text
        tid = thread.json()["thread_id"]
        listed = client.get(f"/api/projects/{tid}/files").json()
        assert {f["path"] for f in listed["files"]} == {"index.html", "script.js", "styles.css"}
