"""What keeping credentials out of storage costs: per-task store time and redactor throughput.

The task is realistic: a security task over the bundled example project whose tool calls read
every Python and config file in it (with a planted credentials file among them), search it, and
carry structured findings, plus steps and an answer that quotes a key. It is recorded into a
fresh SQLite memory (``record_result``, the write every task makes) with redaction on, with
redaction on but the pre-filter off (every line goes to detect-secrets), and with redaction off,
interleaved so the three see the same machine state.

Throughput: :func:`mcphive.redaction.find_secrets` over a corpus of real text (the example
project and the Python standard library's sources installed here), with and without the
pre-filter, and the per-string path the episode store used before (one detect-secrets session per
string, no pre-filter). The pre-filter never changes the findings; the run checks that too.

Run: ``OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/redaction.py``
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import summary, write

import mcphive.memory.sync as memory_sync
import mcphive.redaction as redaction
from mcphive.memory import SyncEpisodicMemory
from mcphive.sample import copy_sample_project
from mcphive.types import Route, Step, Task, TaskResult, TaskStatus, ToolCall, Usage

AWS_KEY_ID = "AKIA" + "Z3MHJQ7T4XWNV2KD"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYzq8pLk2mNa"
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
KEY_BODY = "\n".join(base64.b64encode(hashlib.sha512(bytes([i])).digest())[:64].decode() for i in range(8))
CREDENTIALS = (
    f'AWS_ACCESS_KEY_ID = "{AWS_KEY_ID}"\naws_secret_access_key = "{AWS_SECRET}"\n'
    f'GITHUB_TOKEN = "{GITHUB_TOKEN}"\nDATABASE_URL = "postgres://admin:Sup3rS3cretPw9@db:5432/prices"\n'
    f'KEY = """-----BEGIN RSA PRIVATE KEY-----\n{KEY_BODY}\n-----END RSA PRIVATE KEY-----"""\n'
)


def _read_call(path: str, text: str) -> ToolCall:
    lines = text.splitlines()
    structured = {"path": path, "start_line": 1, "end_line": len(lines), "total_lines": len(lines), "text": text}
    return ToolCall(
        server="workspace",
        tool="read_file",
        arguments={"path": path},
        result=json.dumps(structured),  # what an MCP tool's text content holds
        structured=structured,
        chosen_by="model",
        duration_ms=1.0,
    )


def realistic_result(project: Path) -> TaskResult:
    """A security task's result over ``project``: every text file read, a search, findings, an answer."""
    files = sorted(
        p for p in project.rglob("*") if p.is_file() and p.suffix in {".py", ".toml", ".yaml", ".md", ".cfg"}
    )
    calls = [_read_call(str(p.relative_to(project)), p.read_text(encoding="utf-8", errors="replace")) for p in files]
    calls.append(_read_call("deploy/credentials.py", CREDENTIALS))
    matches = [
        {"file": c.arguments["path"], "line": 1, "text": c.structured["text"].splitlines()[0]}
        for c in calls
        if c.structured and c.structured["text"]
    ]
    calls.append(
        ToolCall(
            server="workspace",
            tool="search_text",
            arguments={"pattern": "AKIA"},
            result=json.dumps(matches),
            structured={"matches": matches, "summary": f"{len(matches)} matches"},
            chosen_by="model",
        )
    )
    findings = [{"file": f"pricefeed/m{i}.py", "line": i, "rule": "B105", "severity": "medium",
                 "message": "Possible hardcoded password: '<redacted>'"} for i in range(40)]  # fmt: skip
    calls.append(
        ToolCall(
            server="security",
            tool="bandit_scan",
            arguments={},
            result=json.dumps(findings),
            structured={"findings": findings, "summary": "40 findings"},
            chosen_by="survey",
        )
    )
    steps = [Step(index=i, kind=c.chosen_by, tool_calls=[c], message=f"{c.tool} done") for i, c in enumerate(calls)]
    answer = f"The key {AWS_KEY_ID} and the secret {AWS_SECRET} are hard-coded in deploy/credentials.py; rotate them."
    steps.append(Step(index=len(steps), kind="final", message=answer))
    return TaskResult(
        task_id="template",
        text="scan the project for hard-coded secrets",
        status=TaskStatus.SUCCEEDED,
        route=Route(agent="security", confidence=0.9, stage="rule", reason="keyword: secrets"),
        agent="security",
        steps=steps,
        answer=answer,
        usage=Usage(input_tokens=4000, output_tokens=200, model_calls=3),
    )


@contextmanager
def no_prefilter() -> Iterator[None]:
    gates = redaction._gates
    redaction._gates = lambda: None  # type: ignore[assignment]
    redaction._CLEAN = redaction._CleanTexts(4096)
    try:
        yield
    finally:
        redaction._gates = gates


@contextmanager
def cold_cache() -> Iterator[None]:
    """Forget which texts were scanned clean: every string of the result is scanned again."""
    redaction._CLEAN = redaction._CleanTexts(4096)
    yield


@contextmanager
def no_redaction() -> Iterator[None]:
    redact = memory_sync.redact_result
    memory_sync.redact_result = lambda result: []  # type: ignore[assignment]
    try:
        yield
    finally:
        memory_sync.redact_result = redact


def store_times(template: TaskResult, rounds: int) -> dict[str, Any]:
    """Milliseconds per ``record_task`` + ``record_result`` of ``template``, in each of three modes."""
    modes: dict[str, Callable[[], Any]] = {
        # Every string new to the redactor (the conservative figure) ...
        "with_redaction": cold_cache,
        # ... and the same result again: texts scanned clean before are skipped by digest, as an agent's
        # repeated survey outputs are.
        "with_redaction_repeated_texts": contextmanager(lambda: iter([None])),
        "with_redaction_no_prefilter": no_prefilter,
        "without_redaction": no_redaction,
    }
    times: dict[str, list[float]] = {name: [] for name in modes}
    with tempfile.TemporaryDirectory() as folder:
        memory = SyncEpisodicMemory.open(f"sqlite:///{folder}/bench.db")
        for round_ in range(rounds + 1):
            for name, mode in modes.items():
                task = Task(text=template.text, workspace="/w")
                result = template.model_copy(deep=True, update={"task_id": task.id})
                with mode():
                    started = time.perf_counter()
                    memory.record_task(task)
                    memory.record_result(result)
                    elapsed = (time.perf_counter() - started) * 1000
                if round_:  # the first round warms caches and compiles the gates
                    times[name].append(elapsed)
        memory.close()
    out: dict[str, Any] = {name: summary(values) for name, values in times.items()}
    base = out["without_redaction"]["p50_ms"]
    out["redaction_overhead_ratio"] = round(out["with_redaction"]["p50_ms"] / base, 3)
    out["repeated_texts_overhead_ratio"] = round(out["with_redaction_repeated_texts"]["p50_ms"] / base, 3)
    out["no_prefilter_overhead_ratio"] = round(out["with_redaction_no_prefilter"]["p50_ms"] / base, 3)
    out["tasks_per_mode"] = rounds
    return out


def corpus(project: Path, limit_lines: int) -> list[str]:
    """Real text: the example project's files, then standard-library sources, up to ``limit_lines`` lines."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    paths = [p for p in sorted(project.rglob("*")) if p.is_file()]
    paths += sorted(stdlib.glob("*.py"))
    texts, lines = [], 0
    for path in paths:
        text = path.read_text(encoding="utf-8", errors="replace")
        texts.append(text)
        lines += len(text.splitlines())
        if lines >= limit_lines:
            break
    texts.append(CREDENTIALS)
    return texts


def throughput(texts: list[str]) -> dict[str, Any]:
    """Lines per second of finding secrets in ``texts``: pre-filtered batch, unfiltered batch, per string."""
    lines = sum(len(t.splitlines()) for t in texts)
    chars = sum(len(t) for t in texts)
    redaction.find_secrets(texts[:3])  # compile the gates, load the plugins
    redaction._CLEAN = redaction._CleanTexts(4096)  # throughput of scanning, not of remembering

    started = time.perf_counter()
    filtered = redaction.find_secrets(texts)
    filtered_s = time.perf_counter() - started
    started = time.perf_counter()
    unfiltered = redaction.find_secrets(texts, prefilter=False)
    unfiltered_s = time.perf_counter() - started
    started = time.perf_counter()
    for text in texts:
        redaction.find_secrets([text], prefilter=False)
    per_string_s = time.perf_counter() - started
    if filtered != unfiltered:
        raise SystemExit("the pre-filter changed the findings: it must be a superset of the plugins' patterns")
    passed = len(redaction._candidates([line for t in texts for line in t.splitlines()]))
    return {
        "texts": len(texts),
        "lines": lines,
        "chars": chars,
        "findings": len(filtered),
        "lines_passed_by_prefilter": passed,
        "prefilter_lines_per_s": round(lines / filtered_s),
        "no_prefilter_lines_per_s": round(lines / unfiltered_s),
        "per_string_lines_per_s": round(lines / per_string_s),
        "prefilter_mb_per_s": round(chars / filtered_s / 1e6, 3),
        "prefilter_speedup": round(unfiltered_s / filtered_s, 2),
        "findings_identical": True,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="tasks recorded per mode")
    parser.add_argument("--lines", type=int, default=20_000, help="corpus size for the throughput run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        project = copy_sample_project(Path(folder) / "sample_project")
        template = realistic_result(project)
        texts = corpus(project, args.lines)
    strings = redaction._strings([template.model_dump()])
    shape = {
        "tool_calls": len(template.tool_calls),
        "strings": len(strings),
        "lines": sum(len(s.splitlines()) for s in strings),
        "chars": sum(len(s) for s in strings),
        "kinds_found": redaction.redact_tree([template.model_dump()])[1],
    }
    print(f"task result: {shape}")
    results: dict[str, Any] = {"task_result": shape, "store": store_times(template, args.rounds)}
    print(f"store: {results['store']}")
    results["redactor"] = throughput(texts)
    print(f"redactor: {results['redactor']}")
    print(f"wrote {write('redaction', results)}")


if __name__ == "__main__":
    main()
