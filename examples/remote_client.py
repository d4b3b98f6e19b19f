"""Drive a builder server with the official LangGraph SDK (``pip install langgraph-sdk``).

It creates a thread (a new project), streams one run, printing each tool call as it
starts and ends, and prints the files the run left and the agent's answer::

    builder keys create --user me          # prints an API key
    builder serve --port 8000 &
    python examples/remote_client.py --url http://127.0.0.1:8000 --key bld_… \\
        --prompt "A one-page site for a bakery"

``--url`` and ``--key`` default to ``BUILDER_URL`` and ``BUILDER_API_KEY``. The same
calls work from JavaScript (``@langchain/langgraph-sdk``) and through
``langgraph.pregel.remote.RemoteGraph``; docs/api.md lists what the server supports.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from langgraph_sdk import get_client

GRAPH = "web_builder"


def _tool_line(event: dict[str, Any]) -> str | None:
    if event.get("event") == "tool_start":
        args = ", ".join(f"{k}={str(v)[:40]!r}" for k, v in event.get("args", {}).items())
        return f"tool {event['tool']}({args})"
    if event.get("event") == "tool_end":
        mark = "ok" if event.get("ok") else "failed"
        return f"  {mark}: {event.get('result', '')}"
    return None


async def main(url: str, key: str, prompt: str) -> int:
    """Run one turn on a new thread; returns the process exit status."""
    async with get_client(url=url, api_key=key) as client:
        thread = await client.threads.create(metadata={"name": prompt[:60]})
        print(f"thread: {thread['thread_id']}")
        final: dict[str, Any] = {}
        async for part in client.runs.stream(
            thread["thread_id"],
            GRAPH,
            input={"messages": [{"role": "user", "content": prompt}]},
            stream_mode=["custom", "values"],
        ):
            if part.event == "custom" and (line := _tool_line(part.data)):
                print(line)
            elif part.event == "values":
                final = part.data
            elif part.event == "error":
                print(f"error: {part.data['error']}: {part.data['message']}")
                return 1
        print("files: " + ", ".join(sorted(final.get("files", {}))))
        answers = [m for m in final.get("messages", []) if m["type"] == "ai"]
        print("reply: " + (answers[-1]["content"] if answers else ""))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("BUILDER_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--key", default=os.environ.get("BUILDER_API_KEY", ""))
    parser.add_argument("--prompt", default="A one-page site for a bakery")
    options = parser.parse_args()
    raise SystemExit(asyncio.run(main(options.url, options.key, options.prompt)))
