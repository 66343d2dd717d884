"""Narrowed schemas for a small model: a file argument offers folders only where the tool takes one."""

from mcphive.agents.schema import _choices

FILES = ["README.md", "pricefeed/cache.py", "pricefeed/client.py", "tests/test_pricing.py"]


def test_a_tool_that_reads_one_file_is_offered_files_only() -> None:
    assert _choices(FILES, []) == FILES  # read_file, replace_block: a folder would only fail
    assert _choices(FILES, [".py"]) == FILES[1:]


def test_a_tool_that_takes_a_folder_is_offered_the_root_and_the_folders_first() -> None:
    assert _choices(FILES, ["/"]) == [".", "pricefeed", "tests", *FILES]  # secret_scan, git_diff
    assert _choices(FILES, [".py", "/"]) == [".", "pricefeed", "tests", *FILES[1:]]
