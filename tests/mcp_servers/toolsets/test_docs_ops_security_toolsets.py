"""docstring_coverage, markdown_links, log_summary, secret_scan and bandit_scan on real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcphive.errors import ToolError
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets.docs import docstring_coverage, markdown_links
from mcphive.mcp_servers.toolsets.ops import log_summary, normalise_message
from mcphive.mcp_servers.toolsets.security import bandit_scan, secret_scan


def test_docstring_coverage_counts_public_names_outside_tests(jail: Jail) -> None:
    result = docstring_coverage(jail)
    assert (result["public_names"], result["documented"], result["coverage_percent"]) == (15, 10, 66.7)
    assert not any(f["file"].startswith("tests/") for f in result["findings"])


def test_private_names_overloads_and_setters_need_no_docstring(jail: Jail, workspace: Path) -> None:
    (workspace / "extra.py").write_text(
        "from typing import overload\n\n"
        "def _helper(): pass\n\n"
        "@overload\ndef f(x: int) -> int: ...\n"
        "def f(x):\n    '''Doc.'''\n    return x\n\n"
        "class Thing:\n    '''Doc.'''\n"
        "    def __repr__(self): return ''\n"
        "    @property\n    def size(self):\n        '''Doc.'''\n        return 1\n"
        "    @size.setter\n    def size(self, value): pass\n"
        "    def grow(self): pass\n"
    )
    result = docstring_coverage(jail, path="extra.py")
    assert [(f["line"], f["message"]) for f in result["findings"]] == [
        (20, "public method `Thing.grow` has no docstring")
    ]


def test_a_file_that_does_not_parse_is_listed_not_fatal(jail: Jail, workspace: Path) -> None:
    (workspace / "pricefeed" / "broken.py").write_text("def f(:\n")
    result = docstring_coverage(jail, path="pricefeed")
    assert result["unparsed_files"] == ["pricefeed/broken.py"]
    assert len(result["findings"]) == 5


def test_markdown_links_skip_urls_anchors_and_code_but_catch_escapes(jail: Jail, workspace: Path) -> None:
    (workspace / "docs").mkdir()
    (workspace / "docs" / "guide.md").write_text(
        "See [home](https://example.com), [top](#top), [mail](mailto:a@b.c) and [readme](../README.md#quick-start).\n"
        "```\n[not a link](missing-in-code.md)\n```\n"
        "Inline `[code](nope.md)` too. ![logo](img/logo.png)\n"
        "[ref]: ../../etc/passwd\n"
        "[space](<my%20notes.md>)\n"
    )
    (workspace / "docs" / "my notes.md").write_text("notes\n")
    result = markdown_links(jail, path="docs")
    problems = [(f["line"], f["message"]) for f in result["findings"]]
    assert problems == [
        (5, "link to 'img/logo.png' points to a file that does not exist"),
        (6, "link to '../../etc/passwd' points outside the workspace"),
    ]
    assert result["links_checked"] == 4


def test_normalising_a_message_hides_ids_numbers_and_quoted_values() -> None:
    assert normalise_message("timeout after 5.0s (request_id=0e28b64f) for 'BTC-USD'") == (
        "timeout after <n>s (request_id=<hex>) for <str>"
    )
    assert normalise_message("job 3f2b1c9e-1d2a-4b5c-9d8e-0123456789ab failed") == "job <uuid> failed"


def test_the_sample_log_has_one_burst_at_its_first_error(jail: Jail) -> None:
    result = log_summary(jail, path="logs/app.log")
    [burst] = [f for f in result["findings"] if f["rule"] == "error-burst"]
    assert (burst["line"], burst["severity"]) == (99, "high")
    assert burst["message"].startswith("40 x ERROR")
    assert result["levels"] == {"DEBUG": 27, "INFO": 149, "WARNING": 2, "ERROR": 41}
    top = result["signatures"][0]
    assert (top["count"], top["first_seen"], top["last_seen"]) == (
        40,
        "2024-05-14T10:31:02+00:00",
        "2024-05-14T10:32:36.111000+00:00",
    )
    assert result["files"][0]["continuation_lines"] == 4


def test_errors_spread_over_time_are_a_signature_but_not_a_burst(jail: Jail, workspace: Path) -> None:
    lines = [
        f"2024-05-14T{10 + i // 6:02d}:{i % 6 * 10:02d}:00Z ERROR app: disk full on /dev/sda{i}" for i in range(12)
    ]
    (workspace / "logs" / "disk.log").write_text("\n".join(lines) + "\n")
    result = log_summary(jail, path="logs/disk.log")
    assert [(f["rule"], f["line"]) for f in result["findings"]] == [("error-signature", 1)]
    assert result["signatures"][0]["count"] == 12


def test_burst_threshold_and_window_are_respected(jail: Jail) -> None:
    assert not any(f["rule"] == "error-burst" for f in log_summary(jail, burst_threshold=41)["findings"])
    assert not any(f["rule"] == "error-burst" for f in log_summary(jail, burst_window_seconds=5)["findings"])
    with pytest.raises(ToolError):
        log_summary(jail, burst_threshold=1)


def test_syslog_and_logfmt_lines_are_parsed(jail: Jail, workspace: Path) -> None:
    (workspace / "logs" / "mixed.log").write_text(
        "May 14 10:00:03 web1 app[12]: ERROR payment declined for order 991\n"
        'ts=2024-05-14T10:00:04Z level=warn msg="retrying"\n'
        "this line has no timestamp\n"
    )
    result = log_summary(jail, path="logs/mixed.log")
    assert result["levels"] == {"ERROR": 1, "WARNING": 1}
    assert result["files"][0]["continuation_lines"] == 1


def test_secret_scan_reports_type_and_line_without_the_value(jail: Jail) -> None:
    result = secret_scan(jail, path="pricefeed")
    found = {(f["file"], f["line"], f["rule"]) for f in result["findings"]}
    assert found == {("pricefeed/config.py", 6, "AWS Access Key"), ("pricefeed/config.py", 10, "Secret Keyword")}
    assert all("redacted" in f["message"] for f in result["findings"])


def test_a_private_key_file_is_found(jail: Jail, workspace: Path) -> None:
    (workspace / "deploy_key").write_text("-----BEGIN RSA PRIVATE KEY-----\nMIIEfake\n-----END RSA PRIVATE KEY-----\n")
    result = secret_scan(jail, path="deploy_key")
    assert [(f["file"], f["rule"]) for f in result["findings"]] == [("deploy_key", "Private Key")]


def test_bandit_ignores_asserts_in_tests_but_not_in_code(jail: Jail, workspace: Path) -> None:
    (workspace / "pricefeed" / "checks.py").write_text("def check(x):\n    assert x > 0\n    return x\n")
    findings = bandit_scan(jail)["findings"]
    asserts = [(f["file"], f["line"]) for f in findings if f["rule"] == "B101"]
    assert asserts == [("pricefeed/checks.py", 2)]


def test_bandit_messages_do_not_quote_the_password(jail: Jail) -> None:
    [finding] = [f for f in bandit_scan(jail, path="pricefeed/config.py")["findings"] if f["rule"] == "B105"]
    assert finding["message"].startswith("Possible hardcoded password: '<redacted>'")
    assert finding["severity"] == "low"
