"""An independent MCP client: the official Python SDK (PyPI `mcp`) against
Loci's streamable HTTP endpoint. Connects with a bearer token, lists the
tools, stores a memory with add_memories and finds it with search_memory.

Usage: mcp_python_client.py URL TOKEN   (exit 0 when every step worked)
"""

import asyncio
import sys
import time

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError


def fail(message):
    print(f"[mcp-python] FAIL: {message}", file=sys.stderr)
    sys.exit(1)


async def main(url, token):
    headers = {"Authorization": f"Bearer {token}"}
    async with streamablehttp_client(url, headers=headers) as (read, write, get_session_id):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            print(f"[mcp-python] initialized: {init.serverInfo.name} protocol {init.protocolVersion}, "
                  f"session {get_session_id()[:8]}...")
            tools = await session.list_tools()
            names = sorted(t.name for t in tools.tools)
            print(f"[mcp-python] {len(names)} tools: {', '.join(names)}")
            for needed in ("add_memories", "search_memory"):
                if needed not in names:
                    fail(f"{needed} is not listed")

            text = "The Python SDK check stores this note about the quarterly tax filing"
            added = await session.call_tool("add_memories", {"text": text, "category": "runbook"})
            if added.isError:
                fail(f"add_memories: {added.structuredContent}")
            memory_id = added.structuredContent["memories"][0]["id"]
            print(f"[mcp-python] add_memories -> {memory_id}")

            # Indexing is asynchronous (the outbox): poll briefly.
            deadline = time.monotonic() + 30
            while True:
                found = await session.call_tool("search_memory", {"query": "quarterly tax filing", "limit": 5})
                if found.isError:
                    fail(f"search_memory: {found.structuredContent}")
                ids = [r["memory_id"] for r in found.structuredContent["results"]]
                if memory_id in ids:
                    rank = ids.index(memory_id) + 1
                    print(f"[mcp-python] search_memory found it at rank {rank} "
                          f"(mode {found.structuredContent['meta']['mode']})")
                    break
                if time.monotonic() > deadline:
                    fail(f"search_memory never returned {memory_id}: {ids}")
                await asyncio.sleep(0.2)

            try:
                await session.call_tool("no_such_tool", {})
                fail("an unknown tool did not fail")
            except McpError as e:
                print(f"[mcp-python] unknown tool refused: {e}")
    print("[mcp-python] OK")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        fail("usage: mcp_python_client.py URL TOKEN")
    asyncio.run(main(sys.argv[1], sys.argv[2]))
