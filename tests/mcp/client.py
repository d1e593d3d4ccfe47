"""Drives keyward's MCP endpoint with the official Python MCP client (PyPI `mcp`), for
tests/mcp_http.rs. Arguments: the endpoint URL, the HTTP headers as JSON, then one or more
JSON lists of tool calls ([name, arguments]). It initializes one session, lists the tools,
runs the first list of calls and prints one JSON line with what came back; before each
further list it waits for a line on stdin, so the test can change the world mid-session.
"""

import asyncio
import json
import sys

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def main(url, headers, batches):
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                tools = await session.list_tools()
                for n, calls in enumerate(batches):
                    if n > 0:
                        sys.stdin.readline()
                    results = []
                    for name, arguments in calls:
                        result = await session.call_tool(name, arguments)
                        text = "".join(getattr(block, "text", "") for block in result.content)
                        results.append({"name": name, "is_error": bool(result.is_error), "text": text})
                    print(json.dumps({"tools": [tool.name for tool in tools.tools], "calls": results}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], json.loads(sys.argv[2]), [json.loads(arg) for arg in sys.argv[3:]]))
