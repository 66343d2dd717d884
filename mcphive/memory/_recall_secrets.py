"""Redact credentials from episode text before it is stored, with detect-secrets' line scanners.

Episodes hold whatever an agent saw or said, which may include a pasted API key. Each line is
run through detect-secrets' plugins *and* its false-positive filters (the ad-hoc ``scan_line``
helper skips the filters and flags every word as "high entropy"), and the whitespace-delimited
token around each finding is replaced by ``[REDACTED:<type>]``: some plugins report only a
prefix of the credential (``ghp`` for a GitHub token), and the whole token must go.
"""

from __future__ import annotations

import re
import threading

from detect_secrets.core import scan
from detect_secrets.settings import default_settings, get_filters, get_settings

__all__ = ["redact_secrets"]

# detect-secrets keeps plugin and filter settings in process-wide globals; concurrent scans in
# several worker threads would reconfigure each other.
_LOCK = threading.Lock()
# The filter drops findings in files that do not exist; an in-memory text has no file.
_FILE_FILTER = "detect_secrets.filters.common.is_invalid_file"
_PSEUDO_FILE = "episode.txt"


def _findings(lines: list[str]) -> list[tuple[str, str]]:
    numbered = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    with _LOCK, default_settings():
        get_settings().disable_filters(_FILE_FILTER)
        get_filters.cache_clear()
        try:
            # The private line scanner is the only in-memory entry point that applies the filters.
            found = list(scan._process_line_based_plugins(numbered, _PSEUDO_FILE))
        finally:
            get_filters.cache_clear()
    return [(secret.type, secret.secret_value) for secret in found if secret.secret_value]


def redact_secrets(text: str) -> tuple[str, list[str]]:
    """Return ``text`` with every detected credential replaced, and the types that were found.

    Args:
        text: free text, possibly several lines.

    Returns:
        The redacted text (unchanged when nothing was found) and the detect-secrets types found,
        e.g. ``["AWS Access Key"]``; secret values are never returned.
    """
    findings = _findings(text.splitlines())
    if not findings:
        return text, []
    # Longest first, so a value that contains another is replaced whole.
    for kind, value in sorted(findings, key=lambda found: -len(found[1])):
        pattern = re.compile(rf"\S*{re.escape(value)}\S*")
        text = pattern.sub(f"[REDACTED:{kind}]", text)
    return text, sorted({kind for kind, _ in findings})
