"""The CLI as a user meets it: a real subprocess of the installed console script."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

MCPHIVE = str(Path(sys.executable).parent / "mcphive")


def mcphive(
    *args: str, data_dir: Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [MCPHIVE, "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=full_env,
    )


def test_help_lists_every_command(tmp_path: Path) -> None:
    done = mcphive("--help", data_dir=tmp_path)
    assert done.returncode == 0
    for command in ("run", "route", "serve", "install", "ingest", "search", "history", "agents", "doctor", "demo"):
        assert command in done.stdout


def test_agents_json_lists_the_six_specialists_with_their_survey(tmp_path: Path) -> None:
    done = mcphive("--json", "agents", data_dir=tmp_path)
    agents = {a["name"]: a for a in json.loads(done.stdout)}
    assert list(agents) == ["code", "docs", "test", "infra", "ops", "security"]
    assert agents["security"]["survey"] == ["secret_scan", "bandit_scan", "mcp_tool_audit"]


def test_agents_lists_a_seventh_agent_from_the_config_and_refuses_a_broken_one(tmp_path: Path) -> None:
    config = tmp_path / "mcphive.toml"
    config.write_text(
        '[[agents]]\nname = "release"\ndescription = "Cuts releases."\n'
        'instructions = "Update the changelog, bump the version, tag."\ntools = ["read_file"]\n'
        'examples = ["cut the 2.1 release"]\n'
    )
    done = mcphive("agents", "--json", "--config", str(config), data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [a["name"] for a in json.loads(done.stdout)][-1] == "release"
    config.write_text(config.read_text().replace('"read_file"', '"read_fiel"'))
    done = mcphive("agents", "--config", str(config), data_dir=tmp_path)
    assert done.returncode == 2 and "names unknown tool(s) read_fiel" in done.stderr and not done.stdout


def test_route_json_explains_the_decision(tmp_path: Path) -> None:
    done = mcphive("--json", "route", "the error rate alert fired after the deploy", data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    route = json.loads(done.stdout)
    assert route["agent"] == "ops" and route["stage"] in ("rule", "semantic") and route["runners_up"]


def test_route_text_json_in_the_order_the_docs_give(tmp_path: Path) -> None:
    # `mcphive route TEXT --json`: the global options work after the command too.
    done = mcphive("route", "the error rate alert fired after the deploy", "--json", data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["agent"] == "ops"


def test_route_shows_the_plan_a_compound_request_would_run_as(tmp_path: Path) -> None:
    text = "add caching to fetch_prices, test it, and document it"
    shown = mcphive("route", text, data_dir=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[1] == "as a task, it runs as a plan of 3 steps:"
    assert lines[2].startswith("  s1 code") and lines[2].endswith(": add caching to fetch_prices")
    assert "s2 test" in lines[3] and "(after s1)" in lines[3] and "s3 docs" in lines[4]
    as_json = json.loads(mcphive("route", text, "--json", data_dir=tmp_path).stdout)
    assert [s["agent"] for s in as_json["plan"]["steps"]] == ["code", "test", "docs"] and "agent" in as_json
    assert "plan" not in json.loads(mcphive("route", "lint the code", "--json", data_dir=tmp_path).stdout)


def test_global_options_after_the_command_override_those_before_it() -> None:
    from mcphive.cli import _parser

    parse = _parser().parse_args
    after = parse(["--data-dir", "a", "pool", "status", "--data-dir", "b", "--json"])
    assert (after.data_dir, after.json, after.debug, after.command, after.pool_command) == (
        "b",
        True,
        False,
        "pool",
        "status",
    )
    before = parse(["--model", "local", "--debug", "history", "-n", "3"])
    assert (before.model, before.debug, before.json, before.limit) == ("local", True, False, 3)
    with pytest.raises(SystemExit):
        parse(["route", "x", "--model", "gpt"])  # the same choices are checked in either place


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "  ", "--workspace", "."], "task text is empty"),
        (["run", "lint", "--agent", "doc"], "unknown agent 'doc'; choose one of"),
        (["run", "lint", "--workspace", "/no/such/dir"], "is not an existing folder"),
        (["route", ""], "task text is empty"),
        (["history", "ffffffff"], "no task"),
        (["--model", "openai", "run", "lint", "--workspace", "."], "needs a server URL; set openai_base_url"),
        (["--model", "anthropic", "run", "lint", "--workspace", "."], "needs an API key; set ANTHROPIC_API_KEY"),
        (["pool", "status"], "no pool to inspect; set pool_members"),
        (["worker"], "mcphive worker needs a durable queue"),
    ],
)
def test_bad_input_prints_one_line_and_exits_2_without_a_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = mcphive(*args, data_dir=tmp_path, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mcphive: error: ") and message in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pool", "up", "-n", "0"], "argument -n/--members: 0 is out of range; it must be at least 1"),
        (["pool", "up", "--base-port", "70000"], "it must be between 1 and 65535"),
        (["search", "x", "-k", "0"], "argument -k: 0 is out of range"),
        (["history", "-n", "many"], "argument -n/--limit: 'many' is not a whole number"),
        (["serve", "--http", "127.0.0.1:99999"], "a port from 0 to 65535"),
        (["worker", "-c", "0"], "argument -c/--concurrency: 0 is out of range"),
    ],
)
def test_out_of_range_numbers_are_refused_before_anything_starts(tmp_path: Path, args: list[str], message: str) -> None:
    done = mcphive(*args, data_dir=tmp_path, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr and not (tmp_path / "pool").exists()


@pytest.mark.parametrize("command", [["serve", "--http"], ["pool", "serve", "--http"]])
def test_serving_on_a_port_in_use_is_one_clear_line(tmp_path: Path, command: list[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        env = {"MCPHIVE_POOL_MEMBERS": '["http://127.0.0.1:9/v1"]'}
        done = mcphive(*command, address, data_dir=tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"mcphive: error: cannot listen on {address}: it is in use; pick another port, or stop what listens there"
    )
    assert "Traceback" not in done.stderr and "front on" not in done.stderr


def test_brackets_in_tasks_and_documents_are_printed_as_they_are(tmp_path: Path) -> None:
    # Rich markup would read "[/etc/x]" as a closing tag (MarkupError) and "[i]" as italics.
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "cache.md").write_text("# Cache\n\nThe cache keeps values[i] per key; see [/etc/cache].\n")
    assert mcphive("ingest", str(docs), data_dir=tmp_path).returncode == 0
    found = mcphive("search", "cache values", data_dir=tmp_path)
    assert found.returncode == 0, found.stderr
    assert "values[i] per key; see [/etc/cache]." in found.stdout
    text = "a good recipe for banana bread [/etc/x] with values[i]"  # out of scope: fails fast, no model call
    ran = mcphive("run", text, "--workspace", str(docs), data_dir=tmp_path)
    assert ran.returncode == 1 and "MarkupError" not in ran.stderr and text in ran.stdout
    listed = mcphive("history", data_dir=tmp_path, env={"COLUMNS": "200"})
    assert listed.returncode == 0, listed.stderr
    assert text in listed.stdout


def test_a_malformed_config_file_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "mcphive.toml"
    config.write_text("workers = [\n")
    done = mcphive("--config", str(config), "route", "lint", data_dir=tmp_path)
    assert done.returncode == 2
    assert "is not valid TOML" in done.stderr and "Traceback" not in done.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    done = mcphive("--debug", "route", "", data_dir=tmp_path)
    assert done.returncode == 2 and "Traceback" in done.stderr


def test_install_claude_desktop_prints_absolute_paths_and_merges_without_clobbering(tmp_path: Path) -> None:
    printed = json.loads(mcphive("install", "claude-desktop", data_dir=tmp_path).stdout)
    entry = printed["mcpServers"]["mcphive"]
    assert Path(entry["command"]).is_absolute() and Path(entry["command"]).exists()
    assert entry["args"] == ["serve"] and Path(entry["env"]["MCPHIVE_DATA_DIR"]).is_absolute()
    config = tmp_path / "claude" / "claude_desktop_config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"mcpServers": {"other": {"command": "x"}}, "theme": "dark"}))
    config.chmod(0o640)
    done = mcphive("install", "claude-desktop", "--write", "--config-file", str(config), data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    merged = json.loads(config.read_text())
    assert merged["theme"] == "dark" and set(merged["mcpServers"]) == {"other", "mcphive"}
    assert config.stat().st_mode & 0o777 == 0o640  # the user's mode is kept
    fresh = tmp_path / "new" / "claude_desktop_config.json"
    created = mcphive("install", "claude-desktop", "--write", "--config-file", str(fresh), data_dir=tmp_path)
    assert created.returncode == 0, created.stderr
    assert fresh.stat().st_mode & 0o777 == 0o600  # a new config is private: other servers' entries hold API keys


def test_install_refuses_to_overwrite_a_config_it_cannot_parse(tmp_path: Path) -> None:
    config = tmp_path / "claude_desktop_config.json"
    config.write_text("{not json")
    done = mcphive("install", "claude-desktop", "--write", "--config-file", str(config), data_dir=tmp_path)
    assert done.returncode == 2 and "is not valid JSON" in done.stderr
    assert config.read_text() == "{not json"


def test_doctor_reports_each_part(tmp_path: Path) -> None:
    done = mcphive("--json", "doctor", data_dir=tmp_path)
    checks = {c["name"]: c for c in json.loads(done.stdout)}
    assert checks["episodic memory"]["ok"] and checks["embedding model"]["ok"]
    assert checks["model: local"]["ok"], checks["model: local"]
    assert not checks["model: anthropic"]["ok"] and "ANTHROPIC_API_KEY" in checks["model: anthropic"]["detail"]
    assert done.returncode == 0


def test_route_explain_shows_every_agents_score(tmp_path: Path) -> None:
    done = mcphive("--json", "route", "--explain", "the docker image runs as root", data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    explained = json.loads(done.stdout)
    assert explained["route"]["agent"] == "infra"
    assert sorted(c["agent"] for c in explained["scores"]) == sorted(
        ["code", "docs", "test", "infra", "ops", "security"]
    )
    assert explained["threshold"] == 0.35
