"""Run one task on a copy of the example project from the async SDK.

.venv/bin/python examples/sdk_quickstart.py
"""

import tempfile
from pathlib import Path

import anyio

from mcphive import Hive
from mcphive.sample import copy_sample_project


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workspace = copy_sample_project(Path(tmp) / "project")
        async with Hive.open(data_dir=Path(tmp) / "state") as hive:
            print("route:", await hive.route("are there leaked credentials in this repo?"))
            handle = await hive.submit("scan the project for hard-coded secrets", workspace=workspace)
            async for event in hive.events(handle.id):
                print(f"  {event.kind}: {event.data}")
            result = await handle.wait()
        for call in result.tool_calls:
            print(f"{call.chosen_by:>6}  {call.tool}({call.arguments})  error={call.is_error}")
        print(result.answer)


if __name__ == "__main__":
    anyio.run(main)
