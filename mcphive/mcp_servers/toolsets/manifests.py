"""Infra tool: check Kubernetes manifests for the settings that keep a workload safe and schedulable.

Pure Python over PyYAML's node tree (not the loaded objects), so every finding keeps the line
of the key it is about. Documents are recognised by their ``kind``; pod templates are found in
Pods, the workload controllers (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job) and CronJobs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from mcphive.mcp_servers.jail import Jail
from mcphive.mcp_servers.toolsets import ToolDef
from mcphive.mcp_servers.toolsets._run import Severity, dump_findings, files_under
from mcphive.types import Finding

__all__ = ["TOOLS", "k8s_manifest_check"]

_TEMPLATE_PATHS = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
# Jobs run to completion: a liveness or readiness probe has nothing to guard.
_NO_PROBES_NEEDED = frozenset({"Job", "CronJob"})
_MAX_BYTES = 2_000_000
_FIXES = {
    "k8s-image-latest": "use an immutable tag or an @sha256 digest",
    "k8s-image-untagged": "use an immutable tag or an @sha256 digest",
    "k8s-no-resource-limits": "set resources.limits (cpu, memory) so one pod cannot starve its node",
    "k8s-privileged": "remove privileged: true; grant only the capabilities it needs",
    "k8s-run-as-non-root-missing": "set securityContext.runAsNonRoot: true (and a runAsUser)",
    "k8s-no-liveness-probe": "add a livenessProbe so a hung process is restarted",
    "k8s-no-readiness-probe": "add a readinessProbe so traffic waits until the pod can serve",
}


def _get(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return value
    return None


def _walk(node: yaml.Node | None, path: tuple[str, ...]) -> yaml.Node | None:
    for key in path:
        node = _get(node, key)
    return node


def _scalar(node: yaml.Node | None) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _containers(pod: yaml.Node) -> Iterator[tuple[yaml.Node, bool]]:
    """Each container node of a pod spec, with True for init containers."""
    for key, is_init in (("containers", False), ("initContainers", True)):
        items = _get(pod, key)
        if isinstance(items, yaml.SequenceNode):
            for item in items.value:
                yield item, is_init


def _image_problem(image: str) -> tuple[str, str] | None:
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "k8s-image-untagged", f"image {image!r} has no tag, so it means :latest"
    if last.endswith(":latest"):
        return "k8s-image-latest", f"image {image!r} uses the moving :latest tag"
    return None


def _check_container(
    c: yaml.Node, kind: str, pod: yaml.Node, is_init: bool
) -> Iterator[tuple[int, str, Severity, str]]:
    """(line, rule, severity, message) for each problem of one container."""
    name = _scalar(_get(c, "name")) or "?"
    image = _get(c, "image")
    problem = _image_problem(_scalar(image) or "")
    if image is not None and problem is not None:
        yield _line(image), problem[0], "medium", f"container {name}: {problem[1]}; pin a version or a digest"
    if _get(_walk(c, ("resources",)), "limits") is None:
        yield _line(c), "k8s-no-resource-limits", "medium", f"container {name} has no resources.limits"
    privileged = _walk(c, ("securityContext", "privileged"))
    if privileged is not None and _scalar(privileged) in ("true", "True"):
        yield _line(privileged), "k8s-privileged", "high", f"container {name} runs privileged (full host access)"
    non_root = _walk(c, ("securityContext", "runAsNonRoot")) or _walk(pod, ("securityContext", "runAsNonRoot"))
    if _scalar(non_root) not in ("true", "True"):
        yield (
            _line(c),
            "k8s-run-as-non-root-missing",
            "medium",
            f"container {name} may run as root (runAsNonRoot unset)",
        )
    if is_init or kind in _NO_PROBES_NEEDED:
        return
    for probe, rule in (("livenessProbe", "k8s-no-liveness-probe"), ("readinessProbe", "k8s-no-readiness-probe")):
        if _get(c, probe) is None:
            yield _line(c), rule, "low", f"container {name} has no {probe}"


def _check_document(rel: str, doc: yaml.Node) -> Iterator[Finding]:
    kind = _scalar(_get(doc, "kind")) or ""
    pod = _walk(doc, _TEMPLATE_PATHS[kind]) if kind in _TEMPLATE_PATHS else None
    if pod is None:
        return
    for container, is_init in _containers(pod):
        for line, rule, severity, message in _check_container(container, kind, pod, is_init):
            yield Finding(
                file=rel,
                line=line,
                rule=rule,
                severity=severity,
                message=f"{kind}: {message}",
                fix=_FIXES.get(rule),
                tool="k8s",
            )


def _documents(text: str) -> list[yaml.Node]:
    return [doc for doc in yaml.compose_all(text, Loader=yaml.SafeLoader) if doc is not None]


def k8s_manifest_check(jail: Jail, path: str = ".") -> dict[str, Any]:
    """Check Kubernetes manifests: resource limits, probes, privileged containers, runAsNonRoot, image tags."""
    findings: list[Finding] = []
    manifests: list[str] = []
    unparsed: list[dict[str, str]] = []
    for rel in files_under(jail, path, (".yml", ".yaml")):
        target = jail.resolve(rel)
        if target.stat().st_size > _MAX_BYTES:
            continue
        text = target.read_text("utf-8", errors="replace")
        if "apiVersion" not in text or "kind" not in text:
            continue
        try:
            docs = _documents(text)
        except yaml.YAMLError as e:
            unparsed.append({"file": rel, "reason": str(e).splitlines()[0]})
            continue
        if any(_get(doc, "kind") is not None for doc in docs):
            manifests.append(rel)
        for doc in docs:
            findings.extend(_check_document(rel, doc))
    return {
        "findings": dump_findings(findings),
        "files": manifests,
        "unparsed": unparsed,
        "summary": f"k8s: {len(findings)} problems in {len(manifests)} manifest file(s)"
        + (f", {len(unparsed)} not parsed" if unparsed else ""),
    }


TOOLS = [
    ToolDef(
        "k8s_manifest_check",
        k8s_manifest_check,
        "Check Kubernetes manifests: missing limits and probes, privileged containers, root, :latest images.",
        file_args={"path": (".yml", ".yaml", "/")},
    )
]
