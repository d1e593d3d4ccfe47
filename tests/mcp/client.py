"""Drives keyward's MCP server with the official Python MCP client (PyPI `mcp`), for
tests/mcp_http.rs. Arguments: the transport, then either

    http URL HEADERS_JSON            the hosted endpoint, with these HTTP headers, or
    stdio COMMAND ENV_JSON           a server spawned as COMMAND (split on spaces), with
                                     these environment variables added,

then one or more JSON lists of tool calls ([name, arguments]). It initializes one session,
lists the tools, runs the first list of calls and prints one JSON line with what came back;
before each further list it waits for a line on stdin, so the test can change the world
mid-session.
"""

import asyncio
import contextlib
import json
import os
import sys

import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client


@contextlib.asynccontextmanager
async def connect(transport, target, settings):
    if transport == "http":
        async with httpx2.AsyncClient(headers=settings, timeout=30) as http:
            async with streamable_http_client(target, http_client=http) as streams:
                yield streams
    else:
        command = target.split(" ")
        server = StdioServerParameters(command=command[0], args=command[1:], env={**os.environ, **settings})
        async with stdio_client(server) as streams:
            yield streams


async def main(transport, target, settings, batches):
    async with connect(transport, target, settings) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            tools = await session.list_tools()
            for n, calls in enumerate(batches):
                if n > 0:
                    await asyncio.to_thread(sys.stdin.readline)
                results = []
                for name, arguments in calls:
                    result = await session.call_tool(name, arguments)
                    text = "".join(getattr(block, "text", "") for block in result.content)
                    results.append({"name": name, "is_error": bool(result.is_error), "text": text})
                print(json.dumps({"tools": [tool.name for tool in tools.tools], "calls": results}), flush=True)


if __name__ == "__main__":
    transport, target, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    asyncio.run(main(transport, target, settings, [json.loads(arg) for arg in sys.argv[4:]]))
