"""Credential redaction for everything mcphive stores, logs, traces or sends: detect-secrets behind a pre-filter.

Text is scanned line by line with detect-secrets' plugins *and* its false-positive filters (the
ad-hoc ``scan_line`` helper skips the filters and flags every word as "high entropy"); the
whitespace-delimited token around each finding becomes ``[REDACTED:<type>]``, because some
plugins report only a prefix of the credential (``ghp`` for a GitHub token) and the whole token
must go. A private key block goes whole, from its ``BEGIN`` line to its ``END`` line: only the
``BEGIN`` line is a finding, and the key material below it is what matters.

Speed: entering detect-secrets' settings and running ~27 plugins with their filters through its
argument-injection layer costs tens of microseconds per line. Almost no line of real text can
match, and whether one *could* is decided by the plugins' own patterns: a regex plugin needs its
pattern to match, a high-entropy plugin needs a quoted run of its charset long enough to exceed its
entropy limit (a string of ``n`` characters has at most ``log2(n)`` bits), the keyword plugin needs
one of its keywords. Those gates run over a whole batch at C speed, and only the lines they pass
are given to detect-secrets, all in one settings session. The gates are a superset by construction,
so the pre-filter never changes what is found; a plugin of an unknown kind turns them off.

A credential found anywhere in a batch is also replaced wherever else it occurs in that batch
(when it is long enough not to be an ordinary word): the model that read a ``.env`` file may quote
the key bare in its answer, where no plugin would recognise it.

:func:`install_log_redaction` applies the same to every log record of mcphive's loggers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from detect_secrets.core import scan
from detect_secrets.plugins import keyword
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin
from detect_secrets.settings import default_settings, get_filters, get_plugins, get_settings

__all__ = [
    "Finding",
    "could_hold_secret",
    "find_secrets",
    "install_log_redaction",
    "redact",
    "redact_secrets",
    "redact_tree",
    "redact_value",
]

# detect-secrets keeps plugin and filter settings in process-wide globals; concurrent scans in
# several worker threads would reconfigure each other.
_LOCK = threading.Lock()
# The filter drops findings in files that do not exist; an in-memory text has no file.
_FILE_FILTER = "detect_secrets.filters.common.is_invalid_file"
# The file type picks the keyword plugin's patterns; ``.txt`` is what the security agent's scan of
# an ordinary file uses (values must be quoted).
_PSEUDO_FILE = "episode.txt"
_PRIVATE_KEY = "Private Key"
# BEGIN ... PRIVATE KEY up to its END line (newlines real or JSON-escaped); when the END line is
# missing (a cut read), the base64 lines that follow.
_KEY_BLOCK = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:[\s\S]{0,20000}?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    r"|(?:(?:\s|\\[rn])+[A-Za-z0-9+/=:,-]{16,})*)"
)
_SHARED_MIN = 8
"""A credential this long is replaced wherever it occurs in the batch; a shorter one only on its line."""
_Shared = dict[str, str]
"""Credential text to replace wherever it occurs -> its detect-secrets type."""


@dataclass(frozen=True)
class Finding:
    """One credential: its detect-secrets type, its value, and where it was found."""

    kind: str
    value: str
    text: int
    """Index of the text in the scanned batch."""
    line: int
    """Index of the line within that text (as ``str.splitlines`` numbers them)."""


@cache
def _gates() -> tuple[re.Pattern[str], ...] | None:
    """Patterns that every line with a finding matches (multi-line mode), or None when none can be built."""
    with _LOCK, default_settings():
        plugins = list(get_plugins())
    gates: list[re.Pattern[str]] = []
    for plugin in plugins:
        if isinstance(plugin, HighEntropyStringsPlugin):
            # Entropy over n characters is at most log2(n): shorter quoted runs can never pass the limit.
            shortest = math.floor(2**plugin.entropy_limit) + 1
            charset = re.escape(plugin.charset)
            gates.append(re.compile(rf"(['\"])[{charset}]{{{shortest},}}\1"))
        elif isinstance(plugin, keyword.KeywordDetector):
            gates.append(re.compile(keyword.DENYLIST_REGEX, re.IGNORECASE))
        elif isinstance(plugin, RegexBasedDetector):
            gates.extend(re.compile(p.pattern, p.flags | re.MULTILINE) for p in plugin.denylist)
        else:
            return None
    return tuple(gates)


def could_hold_secret(line: str) -> bool:
    """Whether any detect-secrets plugin could report something on ``line`` (the pre-filter, for one line)."""
    gates = _gates()
    return gates is None or any(gate.search(line) for gate in gates)


def _candidates(lines: list[str]) -> list[int]:
    """Indices of the lines some plugin could match, by running every gate once over all of them."""
    gates = _gates()
    if gates is None:
        return [i for i, line in enumerate(lines) if line.strip()]
    blob = "\n".join(lines)
    starts, offset = [], 0
    for line in lines:
        starts.append(offset)
        offset += len(line) + 1
    hit: set[int] = set()
    for gate in gates:
        for match in gate.finditer(blob):
            first = bisect_right(starts, match.start()) - 1
            last = bisect_right(starts, max(match.end() - 1, match.start())) - 1
            hit.update(range(first, last + 1))
    return sorted(i for i in hit if lines[i].strip())


def _scan(lines: list[str]) -> list[tuple[int, str, str]]:
    """detect-secrets over ``lines`` in one settings session: (line index, type, value) per finding."""
    if not lines:
        return []
    numbered = list(enumerate(lines, start=1))
    with _LOCK, default_settings():
        get_settings().disable_filters(_FILE_FILTER)
        get_filters.cache_clear()
        try:
            # The private line scanner is the only in-memory entry point that applies the filters.
            found = list(scan._process_line_based_plugins(numbered, _PSEUDO_FILE))
        finally:
            get_filters.cache_clear()
    return [(s.line_number - 1, s.type, s.secret_value) for s in found if s.secret_value]


def find_secrets(texts: Sequence[str], *, prefilter: bool = True) -> list[Finding]:
    """Every credential detect-secrets finds in ``texts``, scanned as one batch.

    Args:
        texts: the batch; findings point into it by index.
        prefilter: skip the lines no plugin could match (never changes the result; off only to measure it).
    """
    where: list[tuple[int, int]] = []
    lines: list[str] = []
    digests: dict[int, bytes] = {}
    for t, text in enumerate(texts):
        if prefilter:
            digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
            if _CLEAN.seen(digest):
                continue  # scanned before with nothing found: the plugins are deterministic
            digests[t] = digest
        for n, line in enumerate(text.splitlines()):
            where.append((t, n))
            lines.append(line)
    chosen = _candidates(lines) if prefilter else [i for i, line in enumerate(lines) if line.strip()]
    found = [Finding(kind, value, *where[chosen[index]]) for index, kind, value in _scan([lines[i] for i in chosen])]
    dirty = {f.text for f in found}
    for t, digest in digests.items():
        if t not in dirty:
            _CLEAN.add(digest)
    return found


class _CleanTexts:
    """Digests of recently scanned texts that held no credential (an agent's survey results repeat a lot).

    Bounded, least recently used out first; only digests are kept, never the text.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._digests: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, digest: bytes) -> bool:
        with self._lock:
            if digest not in self._digests:
                return False
            self._digests.move_to_end(digest)
            return True

    def add(self, digest: bytes) -> None:
        with self._lock:
            self._digests[digest] = None
            if len(self._digests) > self._size:
                self._digests.popitem(last=False)


_CLEAN = _CleanTexts(4096)


# What counts as the rest of a credential's token: no whitespace, quote, or JSON escape (``\\n`` in a
# JSON-encoded tool result is a line break, not part of the token).
_TOKEN_PART = r'(?:[^\s"\\]|\\(?![nrt"\\]))*'
_JSON_START = re.compile(r"\s*[{\[]")


def _token(value: str) -> re.Pattern[str]:
    return re.compile(f"{_TOKEN_PART}{re.escape(value)}{_TOKEN_PART}")


def _replacements(
    scanned: Sequence[str], findings: Iterable[Finding]
) -> tuple[dict[str, list[Finding]], dict[str, str]]:
    """Per scanned text, its findings (longest first); and the credentials to replace wherever they occur.

    The shared ones are the long finding values and the whole tokens around findings (a plugin that
    reports only ``ghp`` still gets the full token replaced in a JSON document that holds it).
    """
    found = sorted(findings, key=lambda f: -len(f.value))  # longest first, so a value inside another goes whole
    by_text: dict[str, list[Finding]] = {}
    shared: _Shared = {}
    for f in found:
        text = scanned[f.text]
        by_text.setdefault(text, []).append(f)
        tokens = _token(f.value).findall(text.splitlines()[f.line])
        for candidate in (f.value, *tokens):
            if len(candidate) >= _SHARED_MIN:
                shared.setdefault(candidate, f.kind)
    return by_text, dict(sorted(shared.items(), key=lambda item: -len(item[0])))


def _apply(text: str, own: Sequence[Finding], shared: _Shared) -> str:
    """``text`` with its own findings replaced on their lines, and every shared credential wherever it occurs."""
    if own:
        lines = text.splitlines(keepends=True)
        for f in own:
            lines[f.line] = _token(f.value).sub(f"[REDACTED:{f.kind}]", lines[f.line])
        text = "".join(lines)
    for value, kind in shared.items():
        if value in text:
            text = _token(value).sub(f"[REDACTED:{kind}]", text)
    return text


def _without_key_blocks(text: str, kinds: set[str]) -> str:
    if "PRIVATE KEY" not in text:
        return text
    clean, count = _KEY_BLOCK.subn(f"[REDACTED:{_PRIVATE_KEY}]", text)
    if count:
        kinds.add(_PRIVATE_KEY)
    return clean


def _json_strings(text: str) -> list[str] | None:
    """The strings (keys too) of ``text`` when it is a JSON document, else None.

    A tool's JSON result holds its text with quotes and newlines escaped, which hides quoted secrets
    from the plugins and makes one long line of a whole file: its decoded strings are scanned instead.
    """
    if _JSON_START.match(text) is None or len(text) > 4_000_000:
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return _strings(document, keys=True)


def _strings(value: Any, *, keys: bool = False) -> list[str]:
    """Every string in ``value`` (any JSON-like tree), depth first; dict keys too with ``keys``."""
    found: list[str] = []
    _collect(value, found, keys)
    return found


def _collect(value: Any, found: list[str], keys: bool) -> None:
    # One list filled in place: a list per node joined upwards costs O(strings x depth).
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, dict):
        if keys:
            found.extend(str(key) for key in value)
        for item in value.values():
            _collect(item, found, keys)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, found, keys)


def _rebuild(value: Any, replace: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return replace(value)
    if isinstance(value, dict):
        return {key: _rebuild(item, replace) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_rebuild(item, replace) for item in value]
    return value


def redact_tree(values: Sequence[Any], *, prefilter: bool = True) -> tuple[list[Any], list[str]]:
    """Redact every string inside ``values`` (JSON-like trees: dicts, lists, strings, scalars), as one batch.

    A credential found in any string is replaced in all of them (see the module docs). Dict keys are
    kept; tuples come back as lists.

    Returns:
        The redacted values, in order, and the detect-secrets types found (values never returned).
    """
    kinds: set[str] = set()
    texts = [_without_key_blocks(text, kinds) for text in _strings(list(values))]
    scanned: dict[str, None] = {}  # each distinct text once; a JSON document as its decoded strings
    for text in texts:
        decoded = _json_strings(text)
        scanned.update((part, None) for part in (decoded if decoded is not None else [text]) if part)
    order = list(scanned)
    findings = find_secrets(order, prefilter=prefilter)
    if not findings and not kinds:
        return list(values), []
    kinds.update(f.kind for f in findings)
    own, shared = _replacements(order, findings)
    clean = iter([_apply(text, own.get(text, ()), shared) for text in texts])
    return [_rebuild(value, lambda _: next(clean)) for value in values], sorted(kinds)


def redact_value(value: Any) -> Any:
    """``value`` (any JSON-like tree) with credentials redacted from every string in it."""
    return redact_tree([value])[0][0]


def redact_secrets(text: str) -> tuple[str, list[str]]:
    """Return ``text`` with every detected credential replaced, and the types that were found.

    Args:
        text: free text, possibly several lines.

    Returns:
        The redacted text (unchanged when nothing was found) and the detect-secrets types found,
        e.g. ``["AWS Access Key"]``; secret values are never returned.
    """
    values, kinds = redact_tree([text])
    return str(values[0]), kinds


def redact(text: str) -> str:
    """``text`` with every detected credential replaced by ``[REDACTED:<type>]``."""
    return redact_secrets(text)[0]


class _LogRecords:
    """A log-record factory that redacts the records of mcphive's loggers and passes others through."""

    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        if record.name == "mcphive" or record.name.startswith("mcphive."):
            _redact_record(record)
        return record


def _redact_record(record: logging.LogRecord) -> None:
    """Render the message (and any traceback) once, redacted, so no handler formats the raw values."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed call; logging reports it when a handler formats the record
        return
    texts = [message]
    if record.exc_info and record.exc_info[1] is not None:
        texts.append(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        texts.append(record.stack_info)
    clean, kinds = redact_tree(texts)
    if not kinds:
        return
    record.msg, record.args = clean[0], None
    if record.exc_info and record.exc_info[1] is not None:
        # Formatters print exc_text when set; the exception object itself (holding the raw value) goes.
        record.exc_text, record.exc_info = clean[1], None
    if record.stack_info:
        record.stack_info = clean[-1]


_install_lock = threading.Lock()


def install_log_redaction() -> None:
    """Redact credentials from every log record of the ``mcphive`` logger and its children (idempotent).

    A :class:`logging.Filter` on the ``mcphive`` logger would not see its children's records (logging
    consults only the emitting logger's filters), so a record factory does it where records are made:
    records of every other logger pass through untouched.
    """
    with _install_lock:
        factory = logging.getLogRecordFactory()
        if not isinstance(factory, _LogRecords):
            logging.setLogRecordFactory(_LogRecords(factory))
