"""A real MCP server (the ``mcp`` SDK's FastMCP) for the MCP tool tests.

``python -m tests.support.mcp_server stdio LOG`` serves over stdio;
``python -m tests.support.mcp_server http LOG PORT`` serves streamable HTTP on
127.0.0.1:PORT at ``/mcp``. Every call of its ``add`` tool is appended to LOG as a
JSON line, so tests see what reached the server.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mcp.server.fastmcp import FastMCP


def main() -> None:
    transport, log = sys.argv[1], Path(sys.argv[2])
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 8000
    server = FastMCP("arithmetic", host="127.0.0.1", port=port, log_level="WARNING")

    @server.tool()
    def add(a: int, b: int) -> str:
        """Add two whole numbers.

        Args:
            a: The first number.
            b: The second number.
        """
        with log.open("a") as out:
            out.write(json.dumps({"tool": "add", "a": a, "b": b}) + "\n")
        return f"{a} + {b} = {a + b}"

    server.run(transport="stdio" if transport == "stdio" else "streamable-http")


if __name__ == "__main__":
    main()
