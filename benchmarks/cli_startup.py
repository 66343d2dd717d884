"""CLI start-up: wall time of ``mcphive --help`` and ``mcphive agents`` (heavy imports must be lazy).

Baseline, measured in the same run: ``python -c pass`` with the same interpreter, so the figures
can be read as "interpreter start + N ms of mcphive".

    python benchmarks/cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import write

MCPHIVE = str(Path(sys.executable).parent / "mcphive")


def wall(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def main(runs: int) -> None:
    wall([MCPHIVE, "--help"], 2)  # warm the page cache
    baseline = statistics.median(wall([sys.executable, "-c", "pass"], runs))
    help_s = statistics.median(wall([MCPHIVE, "--help"], runs))
    agents_s = statistics.median(wall([MCPHIVE, "agents"], runs))
    result = {
        "runs": runs,
        "help_s": round(help_s, 4),
        "agents_s": round(agents_s, 4),
        "baseline_python_s": round(baseline, 4),
        "help_ratio_to_baseline": round(help_s / baseline, 2),
        "target": {"help_s": 0.5},
    }
    path = write("cli_startup", result)
    print(f"{'command':<24}{'median s':>10}")
    print(f"{'python -c pass':<24}{baseline:>10.3f}")
    print(f"{'mcphive --help':<24}{help_s:>10.3f}")
    print(f"{'mcphive agents':<24}{agents_s:>10.3f}")
    print(f"target --help <= 0.5 s; -> {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    main(parser.parse_args().runs)
