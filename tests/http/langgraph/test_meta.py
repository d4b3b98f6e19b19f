"""``/ok`` and ``/info``: the probes agent-chat-ui and Studio make before anything else."""

from __future__ import annotations

import httpx

from builder._version import __version__
from tests.http.langgraph.conftest import LangGraphServer


async def test_info_answers_what_langgraph_clients_expect(lg_server: LangGraphServer) -> None:
    async with httpx.AsyncClient(base_url=lg_server.url) as http:
        # agent-chat-ui's connection check: GET /info with the key as x-api-key.
        answer = await http.get("/info", headers={"x-api-key": lg_server.alice})
        assert answer.status_code == 200
        body = answer.json()
        assert body["version"] == __version__
        assert body["langgraph_py_version"]
        assert body["flags"] == {
            "assistants": True,
            "crons": False,
            "langsmith": False,
            "langsmith_tracing_replicas": False,
        }
        assert body["host"]["kind"] == "self-hosted"
        ok = await http.get("/ok", headers={"authorization": f"Bearer {lg_server.bob}"})
        assert (ok.status_code, ok.json()) == (200, {"ok": True})
        # Like every LangGraph route, they need a key when anonymous access is off.
        assert (await http.get("/info")).status_code == 401
        assert (await http.get("/ok")).status_code == 401
