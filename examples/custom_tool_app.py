"""An app that runs builder's web-builder graph with a tool of its own.

It builds the graph with an extra tool (``word_count``), a scripted model (so it runs
offline; pass ``--model openai:gpt-4.1`` or any ``provider:model`` for a real one), an
in-memory checkpointer and a local sandbox in a temporary directory, then runs one
turn and prints what happened.

    python examples/custom_tool_app.py
    python examples/custom_tool_app.py --model openai:gpt-4.1 --prompt "A one-page CV site"

For durable contexts, pass ``checkpointer=`` a :class:`builder.graphs.checkpointer.
TTLCheckpointer` and ``RunContext(db=Database(...))`` to keep snapshots and usage in
PostgreSQL — or use :class:`builder.runs.RunService`, which wires all of it.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver

from builder import LocalSandbox, LockManager, RunContext, Settings, build_web_builder_graph
from builder.tools import ToolContext

SCRIPT = Path(__file__).with_name("custom_tool_app.yaml")


async def word_count(path: str, *, ctx: ToolContext) -> str:
    """Count the words of a text or HTML file in the project.

    Args:
        path: The file, relative to the project root.
    """
    text = (await ctx.sandbox.read_file(path)).decode("utf-8", errors="replace")
    return f"{path}: {len(text.split())} words"


async def main(model: str, prompt: str) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir))
        graph = build_web_builder_graph(
            model=model, settings=settings, extra_tools=[word_count], checkpointer=InMemorySaver()
        )
        sandbox = LocalSandbox("example-project", settings=settings)
        locks = LockManager(None, timeout=settings.lock_timeout)
        context = RunContext(sandbox=sandbox, locks=locks, settings=settings)
        config = {"configurable": {"thread_id": "example-project"}}
        try:
            async for event in graph.astream(
                {"messages": [("user", prompt)]},
                config,
                context=context,
                stream_mode="custom",
                durability="sync",
            ):
                if event["event"] == "tool_end":
                    print(f"{event['tool']}: {event['result'].splitlines()[0]}")
                elif event["event"] == "check":  # the graph checked the work before ending
                    print("check:", "passed" if event["passed"] else "found problems")
            state = await graph.aget_state(config)
            print("files:", ", ".join(sorted(state.values["files"])))
            # The model's own answer; the turn's last message is the check's verdict.
            answer = state.values["model_message_id"]
            print("reply:", next(m.content for m in state.values["messages"] if m.id == answer))
        finally:
            await sandbox.close()
            await locks.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=f"scripted:{SCRIPT}")
    parser.add_argument("--prompt", default="Write a short landing page and count its words.")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.model, arguments.prompt))
