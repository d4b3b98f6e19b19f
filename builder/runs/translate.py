"""From LangGraph's stream to run events, and from a run's final state to its result."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage

from builder.runs.conversation import ReplyParts
from builder.runs.events import RunStream
from builder.runs.handle import RunResult

__all__ = ["publish_part", "summarise"]


async def publish_part(stream: RunStream, parts: ReplyParts, mode: str, chunk: Any) -> None:
    """Turn one LangGraph stream part into run events, and collect the reply's parts."""
    if mode == "messages":
        message, metadata = chunk
        if metadata.get("langgraph_node") == "agent" and isinstance(message, AIMessageChunk):
            text = message.content if isinstance(message.content, str) else message.text
            if text:
                await stream.publish("token", text=text)
    elif mode == "custom":
        data = dict(chunk)
        kind = str(data.pop("event", "tool_progress"))
        await stream.publish(kind, **data)
    elif mode == "updates":
        for node, update in chunk.items():
            if not isinstance(update, dict):
                continue
            for message in update.get("messages", []) or []:
                if isinstance(message, AIMessage) and node == "agent":
                    parts.add_model_message(message)
                    await stream.publish(
                        "message",
                        role="assistant",
                        content=message.content
                        if isinstance(message.content, str)
                        else message.text,
                        tool_calls=[
                            {"name": c["name"], "id": c.get("id")} for c in message.tool_calls
                        ],
                    )
                elif isinstance(message, AIMessage) and node == "check":
                    # The end-of-turn check's verdict ends the turn's reply.
                    parts.add_check(message.text)
                    await stream.publish(
                        "message", role="assistant", content=message.text, tool_calls=[]
                    )
                elif isinstance(message, ToolMessage):
                    parts.add_tool_result(message)


def summarise(
    result: RunResult, before: dict[str, str], final: dict[str, Any], parts: ReplyParts
) -> None:
    """Fill in what a run did from the manifest before it and the state after it."""
    after: dict[str, str] = final.get("files", {})
    result.files_created = sorted(p for p in after if p not in before)
    result.files_changed = sorted(p for p in after if p in before and before[p] != after[p])
    result.files_deleted = sorted(p for p in before if p not in after)
    result.steps = int(final.get("run_steps", 0))
    result.cost_usd = final.get("run_cost")
    result.stop_reason = final.get("stop_reason") or result.stop_reason
    server = final.get("dev_server")
    result.preview_url = server["preview_url"] if server and server["running"] else None
    result.snapshot_version = final.get("snapshot_version")
    result.reply = parts.reply
    if not result.reply:
        for message in reversed(final.get("messages", [])):
            if isinstance(message, AIMessage) and not message.tool_calls:
                result.reply = message.content if isinstance(message.content, str) else message.text
                break
