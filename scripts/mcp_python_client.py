"""An independent MCP client: the official Python SDK (PyPI `mcp`, the 1.x or
the 2.x line, whichever the interpreter's environment holds) against Loci,
over streamable HTTP or over stdio (`loci mcp`).

Steps: initialize (prints the negotiated protocol revision), tools/list,
add_memories, search_memory until the new memory is found, an unknown tool
(an error path) and a tool call with bad arguments, then session end (the
HTTP session is deleted; the stdio process exits when its input closes).

Usage: mcp_python_client.py http URL TOKEN
       mcp_python_client.py stdio LOCI_BINARY   (LOCI_TOKEN and LOCI__* from the environment)
Exit 0 when every step worked.
"""

import asyncio
import importlib.metadata
import os
import sys
import time

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

SDK = importlib.metadata.version("mcp")
MAJOR = int(SDK.split(".")[0])

if MAJOR >= 2:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError as ProtocolError
else:
    from mcp.client.streamable_http import streamablehttp_client
    from mcp.shared.exceptions import McpError as ProtocolError

TAG = f"[mcp-python {SDK}]"


def fail(message):
    print(f"{TAG} FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def field(obj, snake, camel):
    """A result field under its 2.x (snake_case) or 1.x (camelCase) name."""
    return getattr(obj, snake) if hasattr(obj, snake) else getattr(obj, camel)


async def exercise(session, transport):
    init = await session.initialize()
    server = field(init, "server_info", "serverInfo")
    print(f"{TAG} {transport}: initialized {server.name} {server.version}, "
          f"protocol revision {field(init, 'protocol_version', 'protocolVersion')}")

    tools = await session.list_tools()
    names = sorted(t.name for t in tools.tools)
    print(f"{TAG} {transport}: {len(names)} tools")
    for needed in ("add_memories", "search_memory"):
        if needed not in names:
            fail(f"{needed} is not listed")

    text = f"The Python SDK {SDK} check over {transport} stores this note about the quarterly tax filing"
    added = await session.call_tool("add_memories", {"text": text, "category": "runbook"})
    if field(added, "is_error", "isError"):
        fail(f"add_memories: {field(added, 'structured_content', 'structuredContent')}")
    memory_id = field(added, "structured_content", "structuredContent")["memories"][0]["id"]
    print(f"{TAG} {transport}: add_memories -> {memory_id}")

    # Indexing is asynchronous (the outbox): poll briefly.
    deadline = time.monotonic() + 30
    while True:
        found = await session.call_tool("search_memory", {"query": "quarterly tax filing", "limit": 5})
        body = field(found, "structured_content", "structuredContent")
        if field(found, "is_error", "isError"):
            fail(f"search_memory: {body}")
        ids = [r["memory_id"] for r in body["results"]]
        if memory_id in ids:
            print(f"{TAG} {transport}: search_memory found it at rank {ids.index(memory_id) + 1} "
                  f"(mode {body['meta']['mode']})")
            break
        if time.monotonic() > deadline:
            fail(f"search_memory never returned {memory_id}: {ids}")
        await asyncio.sleep(0.2)

    try:
        await session.call_tool("no_such_tool", {})
        fail("an unknown tool did not fail")
    except ProtocolError as e:
        print(f"{TAG} {transport}: unknown tool refused: {e}")

    bad = await session.call_tool("search_memory", {"query": "tax", "limit": 0})
    if not field(bad, "is_error", "isError"):
        fail("search_memory with limit 0 was accepted")
    print(f"{TAG} {transport}: bad arguments refused as a tool error")


async def over_http(url, token):
    headers = {"Authorization": f"Bearer {token}"}
    if MAJOR >= 2:
        async with httpx2.AsyncClient(headers=headers, timeout=60) as client:
            async with streamable_http_client(url, http_client=client) as (read, write):
                async with ClientSession(read, write) as session:
                    await exercise(session, "streamable HTTP")
    else:
        async with streamablehttp_client(url, headers=headers) as (read, write, get_session_id):
            async with ClientSession(read, write) as session:
                await exercise(session, "streamable HTTP")
                print(f"{TAG} streamable HTTP: session {get_session_id()[:8]}... ends")
    print(f"{TAG} streamable HTTP: session ended")


async def over_stdio(loci):
    env = {k: v for k, v in os.environ.items() if k.startswith("LOCI")}
    params = StdioServerParameters(command=loci, args=["mcp"], env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await exercise(session, "stdio")
    print(f"{TAG} stdio: session ended")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "http":
        asyncio.run(over_http(sys.argv[2], sys.argv[3]))
    elif len(sys.argv) == 3 and sys.argv[1] == "stdio":
        asyncio.run(over_stdio(sys.argv[2]))
    else:
        fail("usage: mcp_python_client.py http URL TOKEN | stdio LOCI_BINARY")
    print(f"{TAG} OK")
