"""run_pytest: a real pytest run in the workspace, reported from its JUnit XML."""

from __future__ import annotations

from pathlib import Path

from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets.test import run_pytest

NODE = "tests/test_pricing.py::test_bulk_discount_starts_at_ten_units"


def test_the_sample_suite_has_exactly_one_failure_with_its_file_line_and_assertion(jail: Jail) -> None:
    result = run_pytest(jail)
    assert result["counts"] == {"tests": 10, "passed": 9, "failed": 1, "errors": 0, "skipped": 0}
    assert result["failed_tests"] == [NODE]
    [finding] = result["findings"]
    assert (finding["file"], finding["line"], finding["rule"]) == ("tests/test_pricing.py", 18, NODE)
    assert "assert 100.0 == 90.0" in finding["message"]
    assert "1 failed" in result["summary"]


def test_fixing_the_bug_makes_the_suite_pass(jail: Jail, workspace: Path) -> None:
    pricing = workspace / "pricefeed" / "pricing.py"
    pricing.write_text(pricing.read_text().replace("quantity > BULK_THRESHOLD", "quantity >= BULK_THRESHOLD"))
    result = run_pytest(jail)
    assert result["findings"] == []
    assert result["counts"]["passed"] == 10


def test_a_single_test_file_can_be_run(jail: Jail) -> None:
    result = run_pytest(jail, path="tests/test_cache.py")
    assert result["counts"] == {"tests": 4, "passed": 4, "failed": 0, "errors": 0, "skipped": 0}


def test_a_failure_inside_a_test_class_gets_the_class_in_its_node_id(jail: Jail, workspace: Path) -> None:
    (workspace / "tests" / "test_grouped.py").write_text(
        "class TestGroup:\n    def test_one(self):\n        assert 1 + 1 == 3, 'arithmetic is broken'\n"
    )
    result = run_pytest(jail, path="tests/test_grouped.py")
    [finding] = result["findings"]
    assert finding["rule"] == "tests/test_grouped.py::TestGroup::test_one"
    assert finding["line"] == 3
    assert "arithmetic is broken" in finding["message"]


def test_a_module_that_cannot_be_collected_is_reported_as_an_error(jail: Jail, workspace: Path) -> None:
    (workspace / "tests" / "test_broken.py").write_text("def test_x(:\n    pass\n")
    result = run_pytest(jail)
    assert result["counts"]["errors"] == 1
    assert any(f["file"] == "tests/test_broken.py" and "error" in f["message"] for f in result["findings"])


def test_a_folder_without_tests_reports_none(jail: Jail) -> None:
    result = run_pytest(jail, path="logs")
    assert result["counts"]["tests"] == 0
    assert result["findings"] == []
    assert "no tests" in result["summary"]
