"""RAG from the user's side: `mcphive ingest` / `mcphive search`, and agents' search_docs through MCP."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mcphive import Hive, Settings, TaskStatus
from mcphive._rag_cli import ingest_path
from mcphive.inference.testing import ScriptedModel, final, tool_call

MCPHIVE = str(Path(sys.executable).parent / "mcphive")


def docs_folder(root: Path) -> Path:
    root.mkdir()
    (root / "runbook.md").write_text(
        "# Runbook\n\n## Upstream timeouts\n\nWhen the quote service times out, fail over to the secondary region "
        "with `pricefeed failover --region b` and page the data team.\n\n## Disk full\n\nRotate the logs.\n"
    )
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    return root


def test_ingest_then_search_from_the_cli(tmp_path: Path) -> None:
    docs = docs_folder(tmp_path / "docs")
    data = tmp_path / "data"
    ingested = subprocess.run([MCPHIVE, "--data-dir", str(data), "--json", "ingest", str(docs)],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    assert ingested.returncode == 0, ingested.stderr
    report = json.loads(ingested.stdout)
    assert report["files"] == 1 and report["chunks"] >= 1 and len(report["skipped"]) == 1
    query = "what to do when the upstream is slow"
    found = subprocess.run([MCPHIVE, "--data-dir", str(data), "--json", "search", query],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    hits = json.loads(found.stdout)
    assert hits and "fail over to the secondary region" in hits[0]["text"]


def test_ingest_says_which_files_it_skipped_and_why(tmp_path: Path) -> None:
    docs = docs_folder(tmp_path / "docs")
    (docs / "notes.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (docs / "gone.md").symlink_to(docs / "nowhere.md")
    done = subprocess.run([MCPHIVE, "--data-dir", str(tmp_path / "data"), "ingest", str(docs)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ingested 1 files as ") and lines[0].endswith(" chunks; skipped 3")
    assert set(lines[1:]) == {
        "  skipped gone.md: a broken symbolic link",
        "  skipped image.png: unsupported file kind '.png'",
        "  skipped notes.txt: not UTF-8 text",
    }
    assert "WARNING" not in done.stderr  # said once, in the report


def test_ingesting_a_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run([MCPHIVE, "--data-dir", str(tmp_path), "ingest", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2 and "does not exist" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.anyio
async def test_agents_search_ingested_docs_through_the_rag_server(tmp_path: Path, sample_workspace: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    ingest_path(settings, docs_folder(tmp_path / "docs"))
    model = ScriptedModel([tool_call("search_docs", query="upstream timeouts runbook", k=2), final("fail over")])
    async with Hive.open(settings.model_copy(update={"max_model_steps": 1}), model=model) as hive:
        result = await hive.run("what is the runbook for upstream timeouts", workspace=sample_workspace, agent="ops")
    assert result.status is TaskStatus.SUCCEEDED, result.error
    searched = [c for c in result.tool_calls if c.tool == "search_docs"]
    assert len(searched) == 1 and searched[0].server == "rag" and searched[0].chosen_by == "model"
    assert searched[0].structured is not None
    assert "secondary region" in searched[0].structured["hits"][0]["text"]


def test_ingest_draws_its_progress_bar_on_stderr_and_reports_unchanged_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich draws as on a terminal
    settings = Settings(data_dir=tmp_path / "data")
    docs = docs_folder(tmp_path / "docs")
    first = ingest_path(settings, docs, show_progress=True)
    drawn = capsys.readouterr()
    assert drawn.out == "" and "ingesting" in drawn.err
    assert (first.files, first.unchanged) == (1, 0)
    again = ingest_path(settings, docs, show_progress=False)
    assert (again.files, again.unchanged, again.added) == (1, 1, 0)
    assert capsys.readouterr().err == ""


def test_chunk_size_and_overlap_come_from_settings_and_a_change_re_chunks_unchanged_files(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "long.md").write_text("# Long\n" + "".join(f"step {i}: check the quote cache\n" for i in range(120)))
    data = tmp_path / "data"
    coarse = ingest_path(Settings(data_dir=data, rag_chunk_chars=2000), docs, show_progress=False)
    fine = ingest_path(
        Settings(data_dir=data, rag_chunk_chars=300, rag_chunk_overlap_lines=0), docs, show_progress=False
    )
    again = ingest_path(
        Settings(data_dir=data, rag_chunk_chars=300, rag_chunk_overlap_lines=0), docs, show_progress=False
    )
    assert fine.unchanged == 0 and fine.chunks > coarse.chunks  # new sizes: the file is chunked again
    assert (again.unchanged, again.chunks) == (1, fine.chunks)
