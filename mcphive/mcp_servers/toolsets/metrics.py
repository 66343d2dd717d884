"""Ops tool: read a Prometheus text-format scrape and report the thresholds it breaches.

Samples are parsed with the inference pool's strict parser
(:func:`mcphive.inference.pool.metrics.parse_prometheus`), one line at a time so each finding
keeps its line. Three rules, each with a default an agent may override through ``rules``:

- ``error_rate``: per counter family ``*_requests_total`` labelled by ``code``/``status``, the
  share of 5xx samples in the total;
- ``p99_seconds``: per histogram ``*_bucket``, the smallest bucket bound holding 99% of the
  observations (``+Inf`` means "beyond the largest bound");
- ``saturation``: gauges named ``*utilization``/``*utilisation``/``*saturation``/``*usage_ratio``
  (fractions of a capacity) above the threshold.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from typing import Any

from mcphive.errors import ToolError
from mcphive.inference.pool.metrics import MetricsParseError, Sample, parse_prometheus
from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets import ToolDef
from mcphive.mcp_servers.toolsets._run import dump_findings, existing_path, files_under
from mcphive.types import Finding

__all__ = ["DEFAULT_RULES", "TOOLS", "metrics_check"]

DEFAULT_RULES: dict[str, float] = {"error_rate": 0.05, "p99_seconds": 1.0, "saturation": 0.9}
"""Thresholds: share of 5xx responses, p99 latency in seconds, fraction of capacity in use."""

_MAX_BYTES = 20_000_000
_SUFFIXES = (".prom", ".metrics")
_SATURATION = re.compile(r"(utili[sz]ation|saturation|usage_ratio)$")
_STATUS_LABELS = ("code", "status", "status_code")

_Line = tuple[int, Sample]


def _parse(text: str) -> list[_Line]:
    samples: list[_Line] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            samples.extend((number, sample) for sample in parse_prometheus(line))
        except MetricsParseError as e:
            raise ToolError(f"line {number} is not Prometheus text format ({e}); is this a metrics scrape?") from e
    return samples


def _is_server_error(sample: Sample) -> bool:
    status = next((sample.labels[k] for k in _STATUS_LABELS if k in sample.labels), "")
    return status.startswith("5")


def _error_rates(file: str, samples: list[_Line], threshold: float) -> list[Finding]:
    families: dict[str, list[_Line]] = defaultdict(list)
    for number, sample in samples:
        if sample.name.endswith("_requests_total") and any(k in sample.labels for k in _STATUS_LABELS):
            families[sample.name].append((number, sample))
    findings = []
    for name, lines in families.items():
        total = sum(s.value for _, s in lines)
        errors = [(n, s) for n, s in lines if _is_server_error(s)]
        rate = sum(s.value for _, s in errors) / total if total else 0.0
        if errors and rate > threshold:
            findings.append(
                Finding(
                    file=file,
                    line=errors[0][0],
                    rule="error-rate",
                    severity="high",
                    message=f"{name}: {rate:.1%} of requests are 5xx (threshold {threshold:.1%})",
                    fix="find the failing dependency in the logs (log_summary) for the same window",
                    tool="metrics_check",
                )
            )
    return findings


def _p99(file: str, samples: list[_Line], threshold: float) -> list[Finding]:
    histograms: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float, int]]] = defaultdict(list)
    for number, sample in samples:
        if sample.name.endswith("_bucket") and "le" in sample.labels:
            others = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
            histograms[(sample.name.removesuffix("_bucket"), others)].append(
                (float(sample.labels["le"]), sample.value, number)
            )
    findings = []
    for (name, labels), buckets in histograms.items():
        buckets.sort()
        count = buckets[-1][1]
        bound, _, line = next((b for b in buckets if b[1] >= 0.99 * count), buckets[-1])
        if count and bound > threshold:
            shown = "beyond the largest bucket" if math.isinf(bound) else f"up to {bound:g} s"
            where = f"{name}{dict(labels) if labels else ''}"
            findings.append(
                Finding(
                    file=file,
                    line=line,
                    rule="p99-latency",
                    severity="medium",
                    message=f"{where}: p99 latency is {shown} (threshold {threshold:g} s)",
                    fix="look for slow upstream calls or saturation at the same time",
                    tool="metrics_check",
                )
            )
    return findings


def _saturation(file: str, samples: list[_Line], threshold: float) -> list[Finding]:
    return [
        Finding(
            file=file,
            line=number,
            rule="saturation",
            severity="medium",
            message=f"{sample.name}{sample.labels or ''} is at {sample.value:.0%} of capacity"
            f" (threshold {threshold:.0%})",
            fix="raise the capacity or shed load before it is exhausted",
            tool="metrics_check",
        )
        for number, sample in samples
        if _SATURATION.search(sample.name) and 0 <= sample.value <= 1 and sample.value > threshold
    ]


def _check_file(jail: Jail, rel: str, limits: dict[str, float]) -> tuple[list[Finding], int]:
    target = jail.resolve(rel)
    if target.stat().st_size > _MAX_BYTES:
        raise ToolError(f"{rel!r} is larger than {_MAX_BYTES} bytes; save a single scrape")
    samples = _parse(target.read_text("utf-8", errors="replace"))
    findings = [
        *_error_rates(rel, samples, limits["error_rate"]),
        *_p99(rel, samples, limits["p99_seconds"]),
        *_saturation(rel, samples, limits["saturation"]),
    ]
    return findings, len(samples)


def metrics_check(jail: Jail, path: str = ".", rules: dict[str, float] | None = None) -> dict[str, Any]:
    """Check Prometheus metrics files (one, or every ``*.prom`` under a folder) for 5xx rate, p99, saturation."""
    unknown = set(rules or {}) - set(DEFAULT_RULES)
    if unknown:
        raise ToolError(f"unknown rule(s) {sorted(unknown)}; the rules are {sorted(DEFAULT_RULES)}")
    limits = {**DEFAULT_RULES, **(rules or {})}
    files = (
        [jail.relative(existing_path(jail, path))]
        if jail.resolve(path).is_file()
        else files_under(jail, path, _SUFFIXES)
    )
    findings: list[Finding] = []
    samples = 0
    for rel in files:
        file_findings, count = _check_file(jail, rel, limits)
        findings.extend(file_findings)
        samples += count
    return {
        "findings": dump_findings(findings),
        "files": files,
        "samples": samples,
        "rules": limits,
        "summary": f"metrics: {len(findings)} threshold breaches in {samples} samples of {len(files)} file(s)",
    }


TOOLS = [
    ToolDef(
        "metrics_check",
        metrics_check,
        "Check a Prometheus metrics file against thresholds: 5xx error rate, p99 latency, saturation gauges.",
        file_args={"path": (".prom", ".metrics", "/")},
    )
]
