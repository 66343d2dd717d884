"""Held-out routing items from real monitoring alert definitions, all labelled ``ops``.

Each item comes from an alert-rule or trigger
file shipped by the upstream package (Prometheus rule files, PCP pmie rules,
Zabbix templates, SmokePing alert config). The wording is never looked at for
labelling or selection; selection within a package is purely positional
(evenly spaced over the file-order list when a package has more than CAP).

Text format: "AlertName: summary" (Prometheus: summary annotation, falling back
to description / message; PCP pmie: rule name + rule summary string; SmokePing:
alert name + comment). Zabbix trigger names are already written upstream as
"Component: summary", so the trigger name is used as is. Template expressions
({{ $labels.x }}, {$MACRO}, {#LLD}, {HOST.NAME}, $var$, ${VAR}, $var) are
removed; a parenthesised group that contained one is removed whole.
"""

from __future__ import annotations

import gzip
import pathlib
import re
from collections.abc import Callable

import yaml

from routing_domain_sources import spread
from routing_domain_sources._fetch import fetch

CAP = 40  # per package: alert sources are few, so more from each than the changelogs' 15
LABEL = "ops"

# Pinned Debian bookworm packages: (name, version)
DEBIAN = [
    ("zabbix-frontend-php", "1:6.0.14+dfsg-1"),
    ("pcp", "6.0.3-1.1"),
    ("etcd-server", "3.4.23-4+b4"),
    ("prometheus-elasticsearch-exporter", "1.5.0-1+b3"),
    ("smokeping", "2.7.3-4.1"),
]


# ---------------------------------------------------------------- text helpers
_TEMPLATE_PATTERNS = [
    r"\{\{.*?\}\}",  # Go templates {{ $labels.x }} / {{$value}}
    r"\{\$[A-Za-z0-9_.:\"\[\]/ -]*\}",  # Zabbix user macros {$MACRO} / {$M:"ctx"}
    r"\{#[A-Za-z0-9_.]+\}",  # Zabbix LLD macros {#FSNAME}
    r"\{[A-Z][A-Z0-9_.]*\}",  # Zabbix built-in macros {HOST.NAME} {ITEM.LASTVALUE1}
    r"\$\{[^}]*\}",  # ${VAR}
    r"\$[A-Za-z_][A-Za-z0-9_]*\$",  # pmie $var$
    r"\$[A-Za-z_][A-Za-z0-9_.]*",  # $var
]
_TEMPLATE_RE = re.compile("|".join(_TEMPLATE_PATTERNS), re.S)
_MARK = "\x00"


def strip_templates(s: str) -> str:
    """Remove template expressions; drop a (...) group that contained one."""
    s = _TEMPLATE_RE.sub(_MARK, s)
    M = _MARK
    s = re.sub(M + r"(?:[.\-/_#]*" + M + ")+", M, s)  # {#DB}.{#TABLE} -> one
    s = re.sub(r"#" + M, M, s)  # #{#SNMPINDEX}
    s = re.sub(M + r"(?:%|ms\b|s\b)", M, s)  # units glued to a value
    s = re.sub(r"(^|:\s*)" + M + r"\s*:\s*", r"\1", s)  # "{#X}: rest" prefix
    # parenthesised / bracketed group containing a removed expression -> gone
    prev = None
    while prev != s:
        prev = s
        s = re.sub(r"\s*\([^()]*" + _MARK + r"[^()]*\)", "", s)
        s = re.sub(r"\s*\[[^\[\]]*" + _MARK + r"[^\[\]]*\]", "", s)
    s = s.replace(_MARK, "")
    s = re.sub(r"([\"'])\s*\1", "", s)  # now-empty quotes: "" or ''
    s = re.sub(r"\(\s*\)|\[\s*\]", "", s)  # now-empty brackets
    s = re.sub(r"\s+([:,.;!?])", r"\1", s)  # space before punctuation
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"^[:,;\s]+", "", s)
    return s


def first_sentence(s: str) -> str:
    s = re.sub(r"\s+", " ", s).strip()
    m = re.search(r"(?<=[.!?])\s+(?=[A-Z0-9])", s)
    if m:
        s = s[: m.start()]
    return s


def finish(s: str) -> str:
    s = re.sub(r"\s+", " ", s).strip()
    if len(s) > 240:
        s = first_sentence(s)
        if len(s) > 240:
            s = s[:240].rstrip()
    return s.rstrip(" .")


def alert_text(name: str, summary: str) -> str:
    name = strip_templates(name)
    summary = finish(first_sentence(strip_templates(summary))) if summary else ""
    return finish(f"{name}: {summary}" if summary else name)


def keep(text: str) -> bool:
    return len(text.split()) >= 3


# ---------------------------------------------------------------- extractors
def prometheus_rules(root: pathlib.Path, rel: str) -> list[tuple[str, str, str, str]]:
    p = root / rel
    raw = gzip.decompress(p.read_bytes()) if rel.endswith(".gz") else p.read_bytes()
    data = yaml.safe_load(raw.decode("utf-8"))
    out = []
    for group in data.get("groups", []) or []:
        for rule in group.get("rules", []) or []:
            if "alert" not in rule:
                continue  # recording rule
            ann = rule.get("annotations") or {}
            summary = ann.get("summary") or ann.get("description") or ann.get("message") or ""
            out.append((alert_text(rule["alert"], str(summary)), LABEL, group.get("name", ""), rel))
    return out


def zabbix_templates(root: pathlib.Path, base: str) -> list[tuple[str, str, str, str]]:
    """All trigger / trigger-prototype names, in sorted-file then document order."""
    allt: list[tuple[str, str, str, str]] = []

    def walk(o, acc):
        if isinstance(o, dict):
            for k, v in o.items():
                if k in ("triggers", "trigger_prototypes") and isinstance(v, list):
                    acc.extend(t for t in v if isinstance(t, dict) and t.get("name"))
                walk(v, acc)
        elif isinstance(o, list):
            for x in o:
                walk(x, acc)

    for p in sorted((root / base).rglob("*.yaml")):
        rel = str(p.relative_to(root))
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
        exp = (data or {}).get("zabbix_export", {})
        tmpls = exp.get("templates") or []
        section = (tmpls[0].get("name") or tmpls[0].get("template")) if tmpls else p.stem
        acc: list = []
        walk(exp, acc)
        for t in acc:
            allt.append((alert_text(str(t["name"]), ""), LABEL, section, rel))
    return allt


def pmieconf_rules(root: pathlib.Path, base: str) -> list[tuple[str, str, str, str]]:
    out = []
    for p in sorted((root / base).rglob("*")):
        if not p.is_file() or p.parent.name == "global":
            continue
        txt = p.read_text(encoding="utf-8", errors="replace")
        m = re.search(r"^rule\s+(\S+)", txt, re.M)
        if not m:
            continue
        name = m.group(1)
        block = txt[m.end() :].split(";", 1)[0]
        sm = re.search(r'^\s*summary\s*=\s*"([^"]*)"', block, re.M)
        summary = sm.group(1) if sm else ""
        rd = re.search(r'^string\s+rule\s*\n\s*default\s*=\s*"([^"]*)"', txt, re.M)
        if "$rule$" in summary and rd:
            summary = summary.replace("$rule$", rd.group(1))
        if not strip_templates(summary):
            hm = re.search(r'^\s*help\s*=\s*\n?"(.*?)"\s*;', block + ";", re.M | re.S)
            summary = hm.group(1) if hm else ""
        rel = str(p.relative_to(root))
        out.append((alert_text(name, summary), LABEL, p.parent.name, rel))
    return out


def smokeping_alerts(root: pathlib.Path, rel: str) -> list[tuple[str, str, str, str]]:
    out = []
    cur = None
    for line in (root / rel).read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\+(\S+)", line)
        if m:
            cur = m.group(1)
            continue
        m = re.match(r"^comment\s*=\s*(.+)", line)
        if m and cur:
            out.append((alert_text(cur, m.group(1)), LABEL, "Alerts", rel))
    return out


# Where each pinned package keeps its alert definitions.
EXTRACT: dict[str, Callable[[pathlib.Path], list[tuple[str, str, str, str]]]] = {
    "zabbix-frontend-php": lambda root: zabbix_templates(root, "usr/share/doc/zabbix-frontend-php/templates"),
    "pcp": lambda root: pmieconf_rules(root, "etc/pcp/pmieconf"),
    "etcd-server": lambda root: [
        *prometheus_rules(root, "usr/share/doc/etcd-server/v2/etcd_alert.rules.yml"),
        *prometheus_rules(root, "usr/share/doc/etcd-server/op-guide/etcd3_alert.rules.yml.gz"),
    ],
    "prometheus-elasticsearch-exporter": lambda root: prometheus_rules(
        root, "usr/share/doc/prometheus-elasticsearch-exporter/examples/prometheus/elasticsearch.rules.yml"
    ),
    "smokeping": lambda root: smokeping_alerts(root, "etc/smokeping/config.d/Alerts"),
}


# ---------------------------------------------------------------- download / collect
def _dedup(items):
    seen, out = set(), []
    for it in items:
        if it[0] in seen or not keep(it[0]):
            continue
        seen.add(it[0])
        out.append(it)
    return out


def collect(workdir: pathlib.Path) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """(source id, [(text, "ops", section, file)]) for every pinned package, CAP each, evenly spaced."""
    return [
        (f"debian:{name}={ver}", spread(_dedup(EXTRACT[name](fetch("debian", name, ver, workdir))), CAP))
        for name, ver in DEBIAN
    ]
