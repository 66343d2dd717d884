"""Split documents into retrievable chunks that respect the document's own structure.

Markdown splits at headings, Python at top-level ``def``/``class`` (found with :mod:`ast`),
other code and plain text at blank-line blocks; every piece that is still too large is cut
into windows of at most ``max_chars`` with a small overlap. Each chunk knows its source path
and its 1-based, inclusive line span, so a search hit can point back at the file.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import re
from collections.abc import Callable, Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["Chunk", "ChunkKind", "chunk_code", "chunk_document", "chunk_markdown", "chunk_python", "chunk_text"]

ChunkKind = Literal["markdown", "python", "code", "text"]

MAX_CHARS = 800
OVERLAP_LINES = 2

_HEADING = re.compile(r"^#{1,6}\s")
_FENCE = re.compile(r"^\s*(```|~~~)")


class Chunk(BaseModel):
    """One retrievable piece of a document.

    Attributes:
        text: the chunk's text (whole lines of the source).
        source: the document's path, as the caller named it.
        start_line: first line, 1-based.
        end_line: last line, inclusive.
        kind: how the chunk was cut (markdown, python, code or text).
        heading: where the chunk sits: its Markdown section (``Guide > Install``) or Python
            definition (``def render``, ``class Widget``); ``None`` elsewhere. Not part of the id.
    """

    model_config = ConfigDict(frozen=True)

    text: str
    source: str
    start_line: int
    end_line: int
    kind: ChunkKind
    heading: str | None = None

    @property
    def id(self) -> str:
        """Content hash of source, span and text: re-adding the same chunk is idempotent."""
        key = f"{self.source}\0{self.start_line}\0{self.end_line}\0{self.text}"
        return hashlib.sha1(key.encode("utf-8"), usedforsecurity=False).hexdigest()


_Block = tuple[int, int]  # 0-based [start, end) line indexes
_Headings = Callable[[int, int], str | None]  # (first, end) line indexes of a chunk -> its heading


def _windows(lines: list[str], start: int, end: int, max_chars: int, overlap: int) -> Iterator[_Block]:
    """Cut lines[start:end] into windows under ``max_chars`` that overlap by ``overlap`` lines."""
    i = start
    while i < end:
        j, size = i, 0
        while j < end and (j == i or size + len(lines[j]) <= max_chars):
            size += len(lines[j])
            j += 1
        yield i, j
        if j >= end:
            return
        # Overlap keeps a sentence cut at the border findable from both sides, but always advance.
        i = max(j - overlap, i + 1)


def _emit(
    lines: list[str],
    blocks: list[_Block],
    source: str,
    kind: ChunkKind,
    max_chars: int,
    heading_of: _Headings | None = None,
    overlap: int = OVERLAP_LINES,
) -> list[Chunk]:
    """Turn line blocks into chunks, windowing oversized blocks and dropping blank ones."""
    chunks: list[Chunk] = []
    for start, end in blocks:
        for a, b in _windows(lines, start, end, max_chars, overlap):
            # Trim blank lines at the edges so spans point at content.
            while a < b and not lines[a].strip():
                a += 1
            while b > a and not lines[b - 1].strip():
                b -= 1
            if a < b:
                text = "".join(lines[a:b]).rstrip("\n")
                heading = heading_of(a, b) if heading_of is not None else None
                chunks.append(Chunk(text=text, source=source, start_line=a + 1, end_line=b, kind=kind, heading=heading))
    return chunks


def _merge_small(lines: list[str], blocks: list[_Block], max_chars: int) -> list[_Block]:
    """Join neighbouring blocks while they fit, so chunks are not needlessly tiny."""
    merged: list[_Block] = []
    for start, end in blocks:
        if merged:
            prev_start, _ = merged[-1]
            if sum(len(line) for line in lines[prev_start:end]) <= max_chars:
                merged[-1] = (prev_start, end)
                continue
        merged.append((start, end))
    return merged


def _split_at(starts: list[int], total: int) -> list[_Block]:
    """Blocks that begin at each of ``starts`` (plus line 0) and run to the next start."""
    cuts = sorted({0, *starts, total})
    return [(a, b) for a, b in itertools.pairwise(cuts) if a < b]


def _blank_line_blocks(lines: list[str]) -> list[_Block]:
    starts = [i for i in range(1, len(lines)) if lines[i].strip() and not lines[i - 1].strip()]
    return _split_at(starts, len(lines))


def chunk_text(text: str, source: str, *, max_chars: int = MAX_CHARS, overlap: int = OVERLAP_LINES) -> list[Chunk]:
    """Chunk plain text at blank-line paragraphs."""
    lines = text.splitlines(keepends=True)
    return _emit(
        lines, _merge_small(lines, _blank_line_blocks(lines), max_chars), source, "text", max_chars, overlap=overlap
    )


def chunk_code(text: str, source: str, *, max_chars: int = MAX_CHARS, overlap: int = OVERLAP_LINES) -> list[Chunk]:
    """Chunk source code in a language we do not parse, at blank-line blocks."""
    lines = text.splitlines(keepends=True)
    return _emit(
        lines, _merge_small(lines, _blank_line_blocks(lines), max_chars), source, "code", max_chars, overlap=overlap
    )


def chunk_markdown(text: str, source: str, *, max_chars: int = MAX_CHARS, overlap: int = OVERLAP_LINES) -> list[Chunk]:
    """Chunk Markdown: one section per heading (headings inside code fences do not count), then by size."""
    lines = text.splitlines(keepends=True)
    starts: list[int] = []
    trails: list[str | None] = []  # per line: the heading trail in force there
    trail: list[tuple[int, str]] = []  # (level, title) of the open headings
    in_fence = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and _HEADING.match(line):
            starts.append(i)
            level = len(line) - len(line.lstrip("#"))
            trail = [*(open_ for open_ in trail if open_[0] < level), (level, line.lstrip("#").strip())]
        trails.append(" > ".join(title for _, title in trail) or None)

    def heading_of(first: int, end: int) -> str | None:
        # A chunk that opens with headings is about the last of them: skip to its first body line.
        while first < end - 1 and (not lines[first].strip() or _HEADING.match(lines[first])):
            first += 1
        return trails[first]

    sections = _join_bare_headings(lines, _split_at(starts, len(lines)))
    # Sections stay separate (a heading is a topic boundary); only oversized ones are windowed.
    return _emit(lines, sections, source, "markdown", max_chars, heading_of, overlap)


def _join_bare_headings(lines: list[str], sections: list[_Block]) -> list[_Block]:
    """Attach a section that is only a heading (``# Guide`` right before ``## Install``) to the next one."""
    joined: list[_Block] = []
    pending: int | None = None
    for start, end in sections:
        if pending is not None:
            start, pending = pending, None
        body = [line for line in lines[start:end] if line.strip()]
        if all(_HEADING.match(line) for line in body) and end < len(lines):
            pending = start
            continue
        joined.append((start, end))
    return joined


def chunk_python(text: str, source: str, *, max_chars: int = MAX_CHARS, overlap: int = OVERLAP_LINES) -> list[Chunk]:
    """Chunk Python at top-level statements: each ``def``/``class`` (with its decorators) starts a chunk.

    Code that does not parse falls back to blank-line blocks.
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return chunk_code(text, source, max_chars=max_chars, overlap=overlap)
    lines = text.splitlines(keepends=True)
    starts: list[int] = []
    definitions: list[tuple[int, int, str]] = []  # 0-based [first, end) lines and "def name" / "class Name"
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            starts.append(first - 1)
            end = node.end_lineno or node.lineno
            starts.append(end)  # whatever follows a definition begins a new block
            keyword = "class" if isinstance(node, ast.ClassDef) else "def"
            definitions.append((first - 1, end, f"{keyword} {node.name}"))

    def heading_of(first: int, end: int) -> str | None:
        return next((name for a, b, name in definitions if a <= first < b), None)

    blocks = [(a, b) for a, b in _split_at(starts, len(lines)) if "".join(lines[a:b]).strip()]
    return _emit(lines, blocks, source, "python", max_chars, heading_of, overlap)


def chunk_document(text: str, source: str, *, max_chars: int = MAX_CHARS, overlap: int = OVERLAP_LINES) -> list[Chunk]:
    """Chunk ``text`` with the splitter its file name calls for (``source`` decides)."""
    name = source.lower()
    if name.endswith((".md", ".markdown", ".rst")):
        return chunk_markdown(text, source, max_chars=max_chars, overlap=overlap)
    if name.endswith((".py", ".pyi")):
        return chunk_python(text, source, max_chars=max_chars, overlap=overlap)
    if name.endswith(".txt"):
        return chunk_text(text, source, max_chars=max_chars, overlap=overlap)
    return chunk_code(text, source, max_chars=max_chars, overlap=overlap)
