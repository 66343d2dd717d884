"""A worker process with a scripted model, for the crash and resume tests (``python _scripted_worker.py MODE LOG``).

Settings come from MCPHIVE_* like ``mcphive worker``'s. The model appends a mark to counter.txt with
``replace_block`` (a real write, one mark per execution), then finishes. Each model request is logged
to LOG as one line. In MODE ``stall`` the model hangs once the write is done (the test kills the
process there); in MODE ``go`` it carries on.

For a plan ("fix the counter, then document it"), each line starts with the step's agent (code or docs):
the code step writes as above; in MODE ``stall-docs`` the model hangs on the docs step's first request.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from mcphive import Hive
from mcphive.inference.base import ChatRequest, ChatResponse
from mcphive.inference.testing import FunctionModel, tool_call


def main(mode: str, log: Path) -> None:
    async def reply(request: ChatRequest) -> ChatResponse | str:
        wrote = any("replace_block" in (message.content or "") for message in request.messages)
        task = next(message.content or "" for message in request.messages if message.role == "user")
        docs = "document it" in task.splitlines()[0]
        step = ("docs " if docs else "code ") if "one step of the request" in task else ""
        with log.open("a") as f:
            f.write(f"{step}{request.tool_choice} {'after-write' if wrote else 'before-write'}\n")
        if docs:
            if mode == "stall-docs":
                await anyio.sleep_forever()
            return "documented" if request.tool_choice == "none" else tool_call("finish")
        if request.tool_choice == "none":
            return "done"
        if not wrote:
            return tool_call("replace_block", path="counter.txt", old="count", new="count +")
        if mode == "stall":
            await anyio.sleep_forever()
        return tool_call("finish")

    async def serve() -> None:
        async with Hive.open(model=FunctionModel(reply), workers=1) as hive:
            await hive.serve_forever()

    anyio.run(serve)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
