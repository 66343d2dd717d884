"""Routing corrections: "that task should have gone to X" becomes a routing example, kept on disk.

Each correction is one JSON line appended to ``data_dir/routing/corrections.jsonl``; the hive
replays them into the semantic router when it opens, so a correction holds from then on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel

from mcphive.errors import ConfigError
from mcphive.types import utcnow

__all__ = ["Correction", "CorrectionLog"]


class Correction(BaseModel):
    """One correction: the task's text and the agent it should have gone to."""

    task_id: str
    text: str
    agent: str
    at: str


class CorrectionLog:
    """Append-only log of corrections."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, task_id: str, text: str, agent: str) -> Correction:
        """Record a correction durably (flushed and synced before returning)."""
        correction = Correction(task_id=task_id, text=text, agent=agent, at=utcnow().isoformat())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(correction.model_dump_json() + "\n")
            f.flush()
            os.fsync(f.fileno())
        return correction

    def load(self) -> list[Correction]:
        """Every correction so far, oldest first; a torn last line (a crash mid-write) is ignored."""
        if not self.path.exists():
            return []
        corrections = []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            try:
                corrections.append(Correction(**json.loads(line)))
            except (ValueError, TypeError) as e:
                if number == len(lines):
                    break
                raise ConfigError(
                    f"{self.path}:{number} is not a valid correction ({e}); fix or remove that line"
                ) from e
        return corrections
