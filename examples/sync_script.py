"""The blocking facade: no async code needed.

.venv/bin/python examples/sync_script.py
"""

import tempfile
from pathlib import Path

from mcphive import Hive
from mcphive.sample import copy_sample_project

with tempfile.TemporaryDirectory() as tmp:
    workspace = copy_sample_project(Path(tmp) / "project")
    with Hive.open_sync(data_dir=Path(tmp) / "state") as hive:
        result = hive.run("review the Dockerfile", workspace=workspace)
    print(result.agent, result.status, len(result.tool_calls), "tool calls")
    print(result.answer)
