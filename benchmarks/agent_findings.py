"""Recall and precision of each agent's deterministic tool pass, and the same pass on real code nobody here wrote.

**Planted** (``mcphive/examples/sample_project`` + its manifest): each of the six agents runs as a
real task — hive, agent loop, in-process MCP, memory — on a fresh copy of the example workspace,
with a scripted model that stops after the survey, so what is measured is the deterministic floor.
Its findings are the task's typed ``TaskResult.findings`` (de-duplicated, severity-ranked).

- A finding *matches* a planted item when its file and rule are the item's and its line is the
  item's line (or the finding has no line) — the rule of ``tests/mcp_servers/toolsets/
  test_sample_manifest.py``.
- ``recall`` = planted items of the agent with at least one matching finding / the agent's planted items.
- ``precision`` = the agent's findings that match some planted item (of any agent) / all its findings.
  Findings that are true but not planted (e.g. a second log signature) count against precision.

**External**: at run time ``pip download --no-deps --no-binary :all:`` fetches the sdists of bandit
1.9.4 (whose ``examples/`` are ~90 files of deliberately vulnerable Python) and of requests, flask
and rich into a temporary folder (deleted afterwards; nothing is committed). On each corpus — bandit's
``examples/`` and each package's import package (its tests left out) — the security and code agents
run their survey as tasks, and the reference tools run directly on the same files:
``bandit -r -f json``, ``detect-secrets scan --all-files``, ``ruff check --output-format json`` with the
agent's rule selection (``E4,E7,E9,F,B``, ``--isolated``). Compared per distinct (file, line, rule):

- ``missing``: reported by the tool, absent from the agent's findings (must be 0 — the agent wraps it);
- ``extra``: reported by the agent only;
- what the agent adds: duplicates removed, redacted secrets (and a check that no secret value of 8 or more
  characters detected in the corpus appears anywhere in the tasks' results or their stored records; shorter
  values such as ``pass`` are ordinary words and are only counted), bandit messages whose quoted
  literal was redacted, a severity for tools that give none (ruff, detect-secrets), and fixes offered.

    python benchmarks/agent_findings.py [--skip-external]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import anyio
from _common import write
from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import default_settings

from mcphive import Hive, Settings, TaskStatus
from mcphive.inference.base import ChatRequest, ChatResponse
from mcphive.inference.testing import FunctionModel, tool_call
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets.code import RUFF_SELECT
from mcphive.sample import copy_sample_project, load_manifest
from mcphive.types import AGENT_NAMES, Finding, TaskResult

SDISTS = ("bandit==1.9.4", "requests==2.32.3", "flask==3.1.0", "rich==13.9.4")
# corpus name -> (sdist folder, the folder inside it that is analysed)
CORPORA = {
    "bandit-1.9.4/examples": ("bandit-1.9.4", "examples"),
    "requests-2.32.3": ("requests-2.32.3", "src/requests"),
    "flask-3.1.0": ("flask-3.1.0", "src/flask"),
    "rich-13.9.4": ("rich-13.9.4", "rich"),
}
BIN = Path(sys.executable).parent
MIN_CHECKED = 8
"""Shortest secret value the leak check looks for (shorter ones are common words)."""

Key = tuple[str, int, str]


def stops_after_survey(request: ChatRequest) -> ChatResponse | str:
    """The scripted model: no further tool, a fixed answer — the survey alone is measured."""
    return "done" if request.tool_choice == "none" else tool_call("finish")


async def run_agent(hive: Hive, agent: str, workspace: Path) -> TaskResult:
    """One real task for ``agent`` on ``workspace``; fails loudly if the task did."""
    result = await hive.run(f"survey for {agent}", workspace=workspace, agent=agent)
    if result.status is not TaskStatus.SUCCEEDED:
        raise RuntimeError(f"{agent} on {workspace} did not succeed: {result.error}")
    errors = [c.result for c in result.tool_calls if c.is_error]
    if errors:
        raise RuntimeError(f"{agent} on {workspace}: tool errors {errors}")
    return result


def _matches(finding: Finding, item: dict[str, Any]) -> bool:
    return finding.file == item["file"] and finding.rule == item["rule"] and finding.line in (None, item["line"])


async def planted(hive: Hive, tmp: Path) -> dict[str, Any]:
    """Recall and precision per agent on the manifest of the example workspace."""
    manifest = load_manifest()
    scores: dict[str, Any] = {}
    for agent in AGENT_NAMES:
        workspace = copy_sample_project(tmp / f"planted-{agent}")
        result = await run_agent(hive, agent, workspace)
        items = [item for item in manifest if item["agent"] == agent]
        found = [item["id"] for item in items if any(_matches(f, item) for f in result.findings)]
        matching = [f for f in result.findings if any(_matches(f, item) for item in manifest)]
        unmatched = [f for f in result.findings if f not in matching]
        scores[agent] = {
            "recall": round(len(found) / len(items), 4) if items else 1.0,
            "precision": round(len(matching) / len(result.findings), 4) if result.findings else 1.0,
            "planted": len(items),
            "found": len(found),
            "findings": len(result.findings),
            "matching_findings": len(matching),
            "missed": sorted({item["id"] for item in items} - set(found)),
            "unmatched_rules": dict(Counter(f"{f.tool}:{f.rule}" for f in unmatched)),
            "survey": [c.tool for c in result.tool_calls],
        }
    return scores


def download(dest: Path) -> None:
    """The sdists of :data:`SDISTS`, unpacked in ``dest`` (network needed, at benchmark time only)."""
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q", "-d", str(dest)]
    subprocess.run([*pip, *SDISTS], check=True, timeout=600)
    for archive in dest.glob("*.tar.gz"):
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")


def _norm(path: str) -> str:
    return Path(os.path.normpath(path)).as_posix()


def reference_bandit(root: Path) -> tuple[list[Key], list[dict[str, Any]]]:
    """bandit run directly: its findings' keys and its raw results."""
    out = subprocess.run([str(BIN / "bandit"), "-r", "-f", "json", "-q", "."], cwd=root, capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    results = json.loads(out.stdout)["results"]
    return [(_norm(r["filename"]), r["line_number"], r["test_id"]) for r in results], results


def reference_ruff(root: Path) -> tuple[list[Key], list[dict[str, Any]]]:
    """ruff run directly with the agent's rule selection."""
    argv = [str(BIN / "ruff"), "check", "--output-format", "json", "--no-cache", "--isolated", "--exit-zero",
            "--select", RUFF_SELECT, "."]  # fmt: skip
    results = json.loads(subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=600).stdout)
    keys = [(_norm(os.path.relpath(r["filename"], root)), r["location"]["row"], r["code"] or "invalid-syntax")
            for r in results]  # fmt: skip
    return keys, results


def reference_detect_secrets(root: Path) -> tuple[list[Key], list[dict[str, Any]]]:
    """detect-secrets' own command line on every file."""
    out = subprocess.run([str(BIN / "detect-secrets"), "scan", "--all-files", "."], cwd=root, capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    report = json.loads(out.stdout)["results"]
    items = [item | {"filename": name} for name, found in report.items() for item in found]
    return [(_norm(i["filename"]), i["line_number"], i["type"]) for i in items], items


def secret_values(root: Path) -> set[str]:
    """The raw values detect-secrets finds in the corpus, to check that none leaks through the agent."""
    collection = SecretsCollection(root=str(root))
    with default_settings():
        for rel in Jail(root).files():
            collection.scan_file(rel)
    return {s.secret_value for found in collection.data.values() for s in found if s.secret_value}


def leak_check(values: set[str], shown: str) -> dict[str, int]:
    """How many secret values appear in ``shown``; values under :data:`MIN_CHECKED` characters ("pass",
    "secret") are ordinary words that appear in file names and rule names, so they are counted apart."""
    checked = {v for v in values if len(v) >= MIN_CHECKED}
    return {
        "secret_values_in_corpus": len(values),
        "secret_values_checked": len(checked),
        "secret_values_leaked": sum(1 for v in checked if v in shown),
    }


def compare(tool_keys: list[Key], agent: list[Finding], raw_agent: int) -> dict[str, Any]:
    """The agent's findings of one tool against the tool run directly, per distinct (file, line, rule)."""
    ours = {(f.file, f.line or 0, f.rule) for f in agent}
    theirs = set(tool_keys)
    return {
        "tool_findings": len(tool_keys),
        "agent_findings": len(agent),
        "missing": len(theirs - ours),
        "extra": len(ours - theirs),
        "duplicates_removed": raw_agent - len(agent),
        "agent_by_severity": dict(Counter(f.severity for f in agent)),
        "agent_with_fix": sum(1 for f in agent if f.fix),
    }


def _raw(result: TaskResult, tool_name: str) -> int:
    return sum(len((c.structured or {}).get("findings") or []) for c in result.tool_calls if c.tool == tool_name)


async def external_corpus(hive: Hive, root: Path) -> dict[str, Any]:
    """The security and code agents on one corpus, against bandit, detect-secrets and ruff run directly."""
    started = time.perf_counter()
    security = await run_agent(hive, "security", root)
    code = await run_agent(hive, "code", root)
    stored = [await hive.memory.get(r.task_id) for r in (security, code)]
    by_tool = {name: [f for f in [*security.findings, *code.findings] if f.tool == name]
               for name in ("bandit", "detect-secrets", "ruff")}  # fmt: skip
    bandit_keys, bandit_raw = reference_bandit(root)
    ruff_keys, ruff_raw = reference_ruff(root)
    secret_keys, _ = reference_detect_secrets(root)
    values = secret_values(root)
    shown = json.dumps([r.model_dump(mode="json") for r in (security, code, *stored) if r is not None])
    quoted = sum(1 for r in bandit_raw if "'" in r["issue_text"] or '"' in r["issue_text"])
    return {
        "python_files": sum(1 for _ in Jail(root).files((".py",))),
        "bandit": compare(bandit_keys, by_tool["bandit"], _raw(security, "bandit_scan"))
        | {"messages_redacted": quoted, "tool_with_more_info": sum(1 for r in bandit_raw if r.get("more_info"))},
        "detect_secrets": compare(secret_keys, by_tool["detect-secrets"], _raw(security, "secret_scan"))
        | leak_check(values, shown),
        "ruff": compare(ruff_keys, by_tool["ruff"], _raw(code, "ruff_check"))
        | {"tool_with_fix": sum(1 for r in ruff_raw if r.get("fix"))},
        "seconds": round(time.perf_counter() - started, 1),
    }


async def external(hive: Hive, tmp: Path) -> dict[str, Any]:
    """Every corpus, each analysed in a workspace of its own, plus totals."""
    downloads = tmp / "sdists"
    downloads.mkdir()
    download(downloads)
    corpora: dict[str, Any] = {}
    for name, (sdist, inner) in CORPORA.items():
        root = tmp / "corpora" / name.replace("/", "-")
        shutil.copytree(downloads / sdist / inner, root)
        corpora[name] = await external_corpus(hive, root)
    tools = ("bandit", "detect_secrets", "ruff")
    totals = {
        tool: {key: sum(c[tool][key] for c in corpora.values())
               for key in ("tool_findings", "agent_findings", "missing", "extra", "duplicates_removed")}
        for tool in tools
    }  # fmt: skip
    leaked = sum(c["detect_secrets"]["secret_values_leaked"] for c in corpora.values())
    return {
        "sdists": list(SDISTS),
        "corpora": corpora,
        "totals": totals,
        "missing": sum(t["missing"] for t in totals.values()),
        "secret_values_leaked": leaked,
    }


async def main(skip_external: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", workers=1, task_timeout_s=1800)
        async with Hive.open(settings, model=FunctionModel(stops_after_survey)) as hive:
            results = await planted(hive, Path(tmp))
            if not skip_external:
                results["external"] = await external(hive, Path(tmp))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-external", action="store_true", help="only the planted manifest (no download)")
    args = parser.parse_args()
    figures = anyio.run(main, args.skip_external)
    print(f"{'agent':<9} {'recall':>6} {'precision':>9} {'planted':>7} {'findings':>8}")
    for agent in AGENT_NAMES:
        row = figures[agent]
        print(f"{agent:<9} {row['recall']:>6.3f} {row['precision']:>9.3f} {row['planted']:>7} {row['findings']:>8}")
    if "external" in figures:
        print(f"\n{'corpus':<24} {'tool':<15} {'tool':>6} {'agent':>6} {'missing':>7} {'dups':>5}")
        for name, corpus in figures["external"]["corpora"].items():
            for tool in ("bandit", "detect_secrets", "ruff"):
                row = corpus[tool]
                print(f"{name:<24} {tool:<15} {row['tool_findings']:>6} {row['agent_findings']:>6} "
                      f"{row['missing']:>7} {row['duplicates_removed']:>5}")  # fmt: skip
    path = write(
        "agent_findings",
        figures | {"parameters": {"model": "scripted: stops after the survey", "match": "file, rule, line (or none)"}},
    )
    print(f"wrote {path}")
