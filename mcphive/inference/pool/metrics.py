"""A small, strict parser for the Prometheus text format, and the vLLM load figures read from it.

Only what a ``/metrics`` page of vLLM needs: ``# HELP``/``# TYPE`` comments, samples with optional
labels and an optional timestamp. Anything else is an error, so a garbage page is noticed instead
of being read as "no load".
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

__all__ = ["LoadMetrics", "MetricsParseError", "Sample", "load_metrics", "parse_prometheus"]

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^(?P<name>{_NAME})(?:\{{(?P<labels>.*)\}})?\s+(?P<value>\S+)(?:\s+(?P<ts>-?\d+))?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_SPECIAL = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}


class MetricsParseError(ValueError):
    """The page is not valid Prometheus text format."""


@dataclass(frozen=True)
class Sample:
    """One sample line: metric name, labels and value."""

    name: str
    labels: dict[str, str]
    value: float


def _labels(text: str | None, line_no: int) -> dict[str, str]:
    if not text or not text.strip():
        return {}
    labels: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _LABEL.match(text, position)
        if match is None:
            raise MetricsParseError(f"line {line_no}: malformed labels {{{text}}}")
        value = match.group(2).replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        labels[match.group(1)] = value
        position = match.end()
    return labels


def _value(text: str, line_no: int) -> float:
    if text in _SPECIAL:
        return _SPECIAL[text]
    try:
        return float(text)
    except ValueError as e:
        raise MetricsParseError(f"line {line_no}: {text!r} is not a number") from e


def parse_prometheus(text: str) -> list[Sample]:
    """Parse a Prometheus text-format page into its samples.

    Raises:
        MetricsParseError: a line is neither a comment, blank, nor a well-formed sample.
    """
    samples: list[Sample] = []
    for line_no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise MetricsParseError(f"line {line_no}: not a Prometheus sample: {line[:120]!r}")
        labels = _labels(match.group("labels"), line_no)
        samples.append(Sample(match.group("name"), labels, _value(match.group("value"), line_no)))
    return samples


@dataclass
class LoadMetrics:
    """A member's load as its server reports it (vLLM names; summed over models and engines).

    Attributes:
        running: Requests being decoded now.
        waiting: Requests queued in the server.
        kv_cache_usage: Fraction (0-1) of the KV cache in use, ``None`` when not reported.
        prefix_hit_rate: Prefix-cache hits over queries since start, ``None`` when not reported.
    """

    running: float = 0.0
    waiting: float = 0.0
    kv_cache_usage: float | None = None
    prefix_hit_rate: float | None = None
    raw: dict[str, float] = field(default_factory=dict, repr=False)


_KNOWN = (
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "vllm:prefix_cache_queries_total",
    "vllm:prefix_cache_hits_total",
)


def load_metrics(text: str) -> LoadMetrics | None:
    """The vLLM load figures of a ``/metrics`` page; ``None`` when it has none (e.g. not vLLM).

    Raises:
        MetricsParseError: the page is not valid Prometheus text format.
    """
    totals: dict[str, float] = {}
    for sample in parse_prometheus(text):
        if sample.name in _KNOWN and not math.isnan(sample.value):
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    if "vllm:num_requests_running" not in totals and "vllm:num_requests_waiting" not in totals:
        return None
    usage = totals.get("vllm:kv_cache_usage_perc", totals.get("vllm:gpu_cache_usage_perc"))
    queries = totals.get("vllm:prefix_cache_queries_total")
    hits = totals.get("vllm:prefix_cache_hits_total")
    hit_rate = hits / queries if queries and hits is not None else None
    return LoadMetrics(
        running=totals.get("vllm:num_requests_running", 0.0),
        waiting=totals.get("vllm:num_requests_waiting", 0.0),
        kv_cache_usage=usage,
        prefix_hit_rate=hit_rate,
        raw=totals,
    )
