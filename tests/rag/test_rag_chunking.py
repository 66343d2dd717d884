"""Chunking follows the document's structure and keeps exact line spans."""

from __future__ import annotations

import itertools
import textwrap

from mcphive.rag.chunking import Chunk, chunk_code, chunk_document, chunk_markdown, chunk_python, chunk_text

MARKDOWN = textwrap.dedent(
    """\
    # Install

    Run pip install.

    ## Configure

    Edit mcphive.toml.
    ```sh
    # not a heading, a shell comment
    mcphive init
    ```

    ## Run
    Start the hive.
    """
)

PYTHON = textwrap.dedent(
    '''\
    """Module docstring."""

    import os

    LIMIT = 3


    def first(x):
        return x + 1


    @decorator
    class Second:
        def method(self):
            return os.sep


    async def third():
        pass
    '''
)


def lines_of(text: str, chunk: Chunk) -> str:
    return "\n".join(text.splitlines()[chunk.start_line - 1 : chunk.end_line])


def test_markdown_splits_at_headings_but_not_at_hashes_inside_code_fences() -> None:
    chunks = chunk_markdown(MARKDOWN, "guide.md")
    assert [c.text.splitlines()[0] for c in chunks] == ["# Install", "## Configure", "## Run"]
    assert [(c.start_line, c.end_line) for c in chunks] == [(1, 3), (5, 11), (13, 14)]
    assert "mcphive init" in chunks[1].text
    assert all(c.kind == "markdown" and c.source == "guide.md" for c in chunks)


def test_every_chunk_text_is_exactly_its_line_span_of_the_source() -> None:
    for text, chunks in [
        (MARKDOWN, chunk_markdown(MARKDOWN, "a.md")),
        (PYTHON, chunk_python(PYTHON, "a.py")),
        (PYTHON, chunk_code(PYTHON, "a.js")),
    ]:
        assert chunks
        for chunk in chunks:
            assert chunk.text == lines_of(text, chunk)


def test_python_gives_each_top_level_definition_its_own_chunk_with_its_decorators() -> None:
    chunks = chunk_python(PYTHON, "mod.py")
    heads = [c.text.splitlines()[0] for c in chunks]
    assert heads == ['"""Module docstring."""', "def first(x):", "@decorator", "async def third():"]
    second = chunks[2]
    assert (second.start_line, second.end_line) == (12, 15)
    assert "def method" in second.text  # methods stay with their class
    assert all(c.kind == "python" for c in chunks)


def test_python_that_does_not_parse_falls_back_to_blank_line_blocks() -> None:
    chunks = chunk_python("def broken(:\n    pass\n\nx = 1\n", "bad.py")
    assert chunks and all(c.kind == "code" for c in chunks)


def test_large_sections_are_windowed_under_the_size_bound_with_overlap() -> None:
    body = "".join(f"line {i} of a long section about chunking\n" for i in range(1, 101))
    text = "# Long\n" + body
    chunks = chunk_markdown(text, "long.md", max_chars=400)
    assert len(chunks) > 5
    assert all(len(c.text) <= 400 for c in chunks)
    assert chunks[0].start_line == 1 and chunks[-1].end_line == 101
    for before, after in itertools.pairwise(chunks):
        assert after.start_line <= before.end_line  # overlapping windows, nothing lost between them
        assert after.start_line > before.start_line


def test_the_overlap_between_windows_is_a_setting_and_zero_means_none() -> None:
    body = "".join(f"line {i} of a long section about chunking\n" for i in range(1, 101))
    for overlap in (0, 2, 5):
        chunks = chunk_document("# Long\n" + body, "long.md", max_chars=400, overlap=overlap)
        shared = {after.start_line - before.end_line - 1 for before, after in itertools.pairwise(chunks)}
        assert shared == {-overlap}, overlap  # each window starts `overlap` lines before the previous one ends


def test_small_paragraphs_are_merged_up_to_the_size_bound() -> None:
    text = "\n\n".join(f"Paragraph {i}." for i in range(10)) + "\n"
    chunks = chunk_text(text, "notes.txt")
    assert len(chunks) == 1
    assert (chunks[0].start_line, chunks[0].end_line) == (1, 19)


def test_chunk_document_picks_the_splitter_from_the_file_name() -> None:
    assert chunk_document("# T\nx\n", "README.md")[0].kind == "markdown"
    assert chunk_document("def f():\n    pass\n", "pkg/m.py")[0].kind == "python"
    assert chunk_document("hello\n", "notes.txt")[0].kind == "text"
    assert chunk_document("FROM python:3.11\n", "Dockerfile")[0].kind == "code"


def test_chunk_ids_are_content_hashes() -> None:
    one = chunk_markdown(MARKDOWN, "a.md")
    again = chunk_markdown(MARKDOWN, "a.md")
    elsewhere = chunk_markdown(MARKDOWN, "b.md")
    assert [c.id for c in one] == [c.id for c in again]
    assert {c.id for c in one}.isdisjoint(c.id for c in elsewhere)


def test_blank_documents_give_no_chunks() -> None:
    assert chunk_document("\n\n   \n", "empty.md") == []
    assert chunk_document("", "empty.py") == []


def test_markdown_chunks_name_their_heading_trail() -> None:
    text = "# Guide\n\n## Install\n\nRun pip.\n\n### On Windows\n\nUse py.\n\n## C#\n\nSharp.\n"
    chunks = chunk_markdown(text, "guide.md")
    assert [(c.text.splitlines()[0], c.heading) for c in chunks] == [
        ("# Guide", "Guide > Install"),  # a bare heading joins the section after it
        ("### On Windows", "Guide > Install > On Windows"),
        ("## C#", "Guide > C#"),
    ]
    long = "## Long\n\n" + "".join(f"line {i} of the section\n" for i in range(60))
    windows = chunk_markdown(long, "long.md", max_chars=200)
    assert len(windows) > 3 and {c.heading for c in windows} == {"Long"}  # every window knows its section


def test_python_chunks_name_their_definition_and_module_code_has_none() -> None:
    chunks = chunk_python(PYTHON, "mod.py")
    assert [c.heading for c in chunks] == [None, "def first", "class Second", "def third"]
    assert all(c.heading is None for c in chunk_text("Just words.\n", "notes.txt"))
