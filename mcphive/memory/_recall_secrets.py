"""Redact credentials from episode text before it is stored: :mod:`mcphive.redaction`, re-exported here."""

from __future__ import annotations

from mcphive.redaction import find_secrets, redact_secrets

__all__ = ["redact_secrets"]


def _findings(lines: list[str]) -> list[tuple[str, str]]:
    """(type, value) of every credential in ``lines``, scanned as one batch behind the pre-filter."""
    return [(finding.kind, finding.value) for finding in find_secrets(lines)]
