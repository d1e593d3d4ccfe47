"""Drives a running keyward with 1claw's LangChain integration (PyPI `langchain-1claw`), for
tests/langchain_http.rs. Arguments:

    BASE_URL API_KEY CLIENT_JSON CALLS_JSON [CALLS_JSON ...]

It builds one `OneclawClient(api_key=API_KEY, base_url=BASE_URL, **CLIENT_JSON)` (an empty
CLIENT_JSON is the key-only sign-in: agent and default vault come from the agent-token answer),
takes its tools from `get_all_tools`, as an agent would be handed them, and invokes each call of
the first list ([tool name, arguments]); it prints one JSON line with what each call answered
and the agent and vault the client resolved. Before each further list it waits for a line on
stdin, so the test can change the world mid-session while the client keeps its token.
"""

import json
import sys

from langchain_1claw import OneclawClient, get_all_tools


def main(base_url, api_key, settings, batches):
    with OneclawClient(api_key=api_key, base_url=base_url, **settings) as client:
        tools = {tool.name: tool for tool in get_all_tools(client)}
        for n, calls in enumerate(batches):
            if n > 0:
                sys.stdin.readline()
            outputs = [{"name": name, "output": tools[name].invoke(arguments)} for name, arguments in calls]
            answer = {
                "tools": sorted(tools),
                # What the client resolved from the agent-token answer, without asking again.
                "agent_id": client._agent_id,
                "vault_id": client._vault_id,
                "calls": outputs,
            }
            print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    base_url, api_key, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    main(base_url, api_key, settings, [json.loads(arg) for arg in sys.argv[4:]])
