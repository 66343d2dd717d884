"""The CLI's ``pool`` commands: ``pool up`` (start members), ``pool status`` and ``pool serve`` (the HTTP front)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2

from mcphive.errors import ModelUnavailable, UsageError
from mcphive.inference.pool.gpu import GpuStats, assign_members, load_placements, read_gpu_stats, save_placements
from mcphive.inference.pool.inventory import DeviceInventory, MemberPlan, detect_inventory, plan_members
from mcphive.settings import Settings

__all__ = [
    "RunningPool",
    "format_status",
    "placements_path",
    "pool_serve",
    "pool_status",
    "pool_up",
    "start_members",
]

Say = Callable[[str], None]


@dataclass
class RunningPool:
    """Members started from a plan; :meth:`stop` ends them (SIGTERM, then SIGKILL after ``grace`` seconds)."""

    plans: list[MemberPlan]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    grace: float = 10.0

    @property
    def urls(self) -> list[str]:
        """The members' ``/v1`` roots, what ``pool_members`` takes."""
        return [plan.url for plan in self.plans]

    def exited(self) -> list[int]:
        """Indexes of members whose process has ended."""
        return [i for i, process in enumerate(self.processes) if process.poll() is not None]

    def stop(self) -> None:
        """Stop every member that is still running."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=self.grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(plan: MemberPlan, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx2.Client(timeout=2.0) as client:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if client.get(f"{plan.url}/models").status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.2)  # polling a child process from synchronous code; nothing to wait on instead
    tail = _log_tail(plan.log_path)
    state = f"exited with {process.returncode}" if process.poll() is not None else f"not healthy after {timeout:g} s"
    raise ModelUnavailable(
        f"pool member {plan.index} ({plan.device}, {plan.url}) {state}; see {plan.log_path}, which ends:\n{tail}"
    )


def _log_tail(path: Path, lines: int = 8, width: int = 240) -> str:
    """The last lines of a member's log, each cut to ``width``: the error, not one 2,000-character line of metadata."""
    if not path.exists():
        return "(no log)"
    last = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(line if len(line) <= width else line[: width - 1] + "…" for line in last)


def _check_ports_free(plans: Sequence[MemberPlan]) -> None:
    """Refuse at once a planned port something already listens on.

    Otherwise the member dies on its bind while the health check may find the other server answering
    ``/v1/models`` on that port and call the member up.
    """
    from mcphive._asgi import listening_socket

    for plan in plans:
        host = urlsplit(plan.url).hostname or "127.0.0.1"
        try:
            listening_socket(host, plan.port).close()
        except UsageError as e:
            raise UsageError(f"pool member {plan.index}: {e} (pool up --base-port)") from e


def start_members(plans: Sequence[MemberPlan], *, start_timeout: float = 600.0) -> RunningPool:
    """Start every planned member and block until each answers ``/v1/models``.

    Blocking: call it from synchronous code or through ``anyio.to_thread.run_sync``.

    Raises:
        UsageError: a planned port is taken (nothing is started).
        ModelUnavailable: a member exited or did not answer within ``start_timeout``; all are stopped.
    """
    _check_ports_free(plans)
    running = RunningPool(list(plans))
    try:
        for plan in plans:
            plan.log_path.parent.mkdir(parents=True, exist_ok=True)
            with plan.log_path.open("ab") as log:
                env = os.environ | dict(plan.env)
                running.processes.append(subprocess.Popen(plan.argv, stdout=log, stderr=subprocess.STDOUT, env=env))
        for plan, process in zip(plans, running.processes, strict=True):
            _wait_healthy(plan, process, start_timeout)
    except BaseException:
        running.stop()
        raise
    return running


def placements_path(settings: Settings) -> Path:
    """Where ``pool up`` records which member runs on which GPU or MIG slice, for ``pool serve`` and ``pool status``."""
    return settings.data_dir / "pool" / "members.json"


def _placements(settings: Settings) -> dict[str, str]:
    """What ``pool up`` recorded, for the configured members only (a file left by a killed ``pool up`` may be stale)."""
    return {url: v for url, v in load_placements(placements_path(settings)).items() if url in settings.pool_members}


def _record_placements(settings: Settings, plans: Sequence[MemberPlan]) -> None:
    placements = {p.url: p.env["CUDA_VISIBLE_DEVICES"] for p in plans if p.env.get("CUDA_VISIBLE_DEVICES")}
    if placements:
        save_placements(placements_path(settings), placements)


def _plan(
    settings: Settings, n: int | None, command: str | None, model: str | None, base_port: int
) -> list[MemberPlan]:
    inventory = detect_inventory()
    if not inventory.slots:
        return _cpu_plan(settings, inventory, n, base_port)
    if model is None:
        raise UsageError("this machine has GPUs: name the model the members serve, e.g. --model-id Qwen/Qwen3-8B")
    served = settings.pool_model if settings.pool_model != "default" else None
    log_dir = settings.data_dir / "pool"
    plans = plan_members(
        inventory,
        command=command or "vllm serve",
        base_port=base_port,
        model=model,
        served_name=served,
        log_dir=log_dir,
    )
    if n is not None and n > len(plans):
        raise UsageError(
            f"asked for {n} members but this machine has {len(plans)} GPU slot(s); pass -n {len(plans)} or less"
        )
    return plans[:n] if n else plans


def _cpu_plan(settings: Settings, inventory: DeviceInventory, n: int | None, base_port: int) -> list[MemberPlan]:
    from mcphive.inference.local import default_gguf_path

    path = settings.local_model_path or default_gguf_path()
    served = settings.pool_model if settings.pool_model != "default" else "smollm2"
    return plan_members(
        inventory,
        model=str(path),
        served_name=served,
        base_port=base_port,
        cpu_members=n or 2,
        log_dir=settings.data_dir / "pool",
        cpu_args=(
            *("--n_threads", str(settings.local_threads), "--n_threads_batch", str(settings.local_threads)),
            *("--n_ctx", str(settings.local_context), "--interrupt_requests", "false"),
        ),
    )


def pool_up(
    settings: Settings,
    n: int | None = None,
    *,
    command: str | None = None,
    model: str | None = None,
    base_port: int = 8000,
    say: Say,
    stop: threading.Event | None = None,
) -> int:
    """Start the planned members, print them, and keep them running until Ctrl-C (or ``stop`` is set).

    Args:
        settings: Where logs go (``data_dir/pool``), the CPU model and the served model name.
        n: How many members: on GPUs the first ``n`` slots (default: all), on a CPU machine ``n`` (default: 2).
        command: The GPU server command (default ``vllm serve``).
        model: The model GPU members serve (required on GPUs).
        base_port: Member ``i`` listens on ``base_port + i``.
        say: Where lines of output go.
        stop: Set it to stop the members (tests); Ctrl-C does the same.

    Returns:
        0 when stopped on request, 1 when a member exited on its own.
    """
    running = start_members(_plan(settings, n, command, model, base_port))
    _record_placements(settings, running.plans)
    try:
        for plan in running.plans:
            say(f"member {plan.index}: {plan.device:<22} {plan.url}  log {plan.log_path}")
        say(f"pool_members = {json.dumps(running.urls)}")
        say("members are up; Ctrl-C stops them")
        stop = stop or threading.Event()
        while not stop.wait(0.5) and not running.exited():
            pass  # Event.wait wakes on Ctrl-C too, so the members are stopped at once
        if dead := running.exited():
            say(f"member(s) {', '.join(map(str, dead))} exited; stopping the pool (see their logs)")
            return 1
        return 0
    except KeyboardInterrupt:
        say("stopping the members")
        return 0
    finally:
        running.stop()
        placements_path(settings).unlink(missing_ok=True)


FRONT_TOKEN_ENV = "MCPHIVE_POOL_FRONT_TOKEN"
"""The bearer token ``pool status --front`` sends to a front that requires one."""


def pool_status(settings: Settings, front: str | None = None) -> dict[str, Any]:
    """One poll of every member in ``pool_members`` (health, breaker, load, prefix-cache hit rate) and the spill.

    Args:
        settings: The members, and the spill configuration when no front is given.
        front: The root of a running ``pool serve``: the spill's configuration and counts come from its ``/metrics``.

    Returns:
        ``{"members": [...], "spill": {...}, "gpus": [...]}``. ``gpus`` lists this machine's GPUs and MIG slices
        (:class:`GpuStats` as dicts, each naming the member ``pool up`` started on it), empty without GPUs.
        ``spill`` holds ``fallback`` (``None`` when none is configured), ``price`` (USD per million input and
        output tokens, or ``None``), ``source`` (``settings`` or the front's URL), and, from a front,
        ``requests``, ``input_tokens``, ``output_tokens`` and ``cost_usd``.

    Raises:
        UsageError: ``pool_members`` is empty.
        ModelUnavailable: the front did not answer ``/metrics`` with a Prometheus page.
    """
    if not settings.pool_members:
        raise UsageError('no pool to inspect; set pool_members, e.g. ["http://127.0.0.1:8000/v1"], or run `pool up`')
    spill = _front_spill(front) if front else _configured_spill(settings)
    gpus = assign_members(read_gpu_stats(), _placements(settings))
    return {"members": anyio.run(_poll, settings), "spill": spill, "gpus": [dataclasses.asdict(g) for g in gpus]}


def _configured_spill(settings: Settings) -> dict[str, Any]:
    fallback = None if settings.pool_fallback == "none" else settings.pool_fallback
    price = list(settings.pool_fallback_price) if settings.pool_fallback_price else None
    return {"fallback": fallback, "price": price, "source": "settings"}


def _front_spill(front: str) -> dict[str, Any]:
    from mcphive.inference.pool.metrics import MetricsParseError, parse_prometheus

    url = f"{front.rstrip('/').removesuffix('/v1')}/metrics"
    token = os.environ.get(FRONT_TOKEN_ENV)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx2.get(url, headers=headers, timeout=10.0)
    except httpx2.TransportError as e:
        raise ModelUnavailable(f"the pool front at {url} does not answer ({e}); is `pool serve` running?") from e
    if response.status_code != 200:
        hint = f"; set ${FRONT_TOKEN_ENV} to one of its tokens" if response.status_code in (401, 403) else ""
        raise ModelUnavailable(f"the pool front's {url} answered HTTP {response.status_code}{hint}")
    try:
        samples = parse_prometheus(response.text)
    except MetricsParseError as e:
        raise ModelUnavailable(f"the pool front's {url} is not a Prometheus page ({e})") from e
    values = {s.name: s.value for s in samples}
    configured = next((s for s in samples if s.name == "mcphive_pool_spill_configured"), None)
    if configured is None:
        raise ModelUnavailable(f"{url} has no mcphive_pool_spill_* figures; is it a `mcphive pool serve` front?")
    prices = {s.labels.get("direction"): s.value for s in samples if s.name.endswith("_price_usd_per_million_tokens")}
    return {
        "fallback": configured.labels.get("fallback") if configured.value else None,
        "price": [prices["input"], prices["output"]] if {"input", "output"} <= prices.keys() else None,
        "source": url,
        "requests": int(values.get("mcphive_pool_spill_requests_total", 0)),
        "input_tokens": int(values.get("mcphive_pool_spill_input_tokens_total", 0)),
        "output_tokens": int(values.get("mcphive_pool_spill_output_tokens_total", 0)),
        "cost_usd": values.get("mcphive_pool_spill_cost_usd_total", 0.0),
    }


async def _poll(settings: Settings) -> list[dict[str, Any]]:
    from mcphive.inference.pool import PoolModel

    pool = PoolModel(settings.pool_members, settings.pool_model, timeout=min(settings.model_timeout_s, 10.0))
    try:
        await pool.refresh()
        rows = []
        for member, state in zip(pool.members, pool.status(), strict=True):
            metrics = member.metrics
            load = state["load"]
            rows.append(
                {
                    "url": member.url,
                    "breaker": state["breaker"],
                    "models": sorted(member.served_models or ()),
                    "load": None if isinstance(load, float) and math.isinf(load) else load,
                    "kv_cache_usage": metrics.kv_cache_usage if metrics else None,
                    "prefix_hit_rate": metrics.prefix_hit_rate if metrics else None,
                    "last_error": state["last_error"],
                }
            )
        return rows
    finally:
        await pool.aclose()


def format_status(status: dict[str, Any]) -> str:
    """``pool_status``'s result as a plain table of members and a line on the spill."""

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    lines = [f"{'member':<32} {'breaker':<9} {'load':>5} {'kv':>5} {'hits':>5}  models / last error"]
    for r in status["members"]:
        load = "-" if r["load"] is None else f"{r['load']:g}"
        tail = ", ".join(r["models"]) or r["last_error"] or "-"
        line = (
            f"{r['url']:<32} {r['breaker']:<9} {load:>5} {pct(r['kv_cache_usage']):>5} {pct(r['prefix_hit_rate']):>5}"
        )
        lines.append(f"{line}  {tail}")
    lines.append(_format_spill(status["spill"]))
    lines += _format_gpus([GpuStats(**g) for g in status.get("gpus", [])])
    return "\n".join(lines)


def _format_gpus(gpus: Sequence[GpuStats]) -> list[str]:
    if not gpus:
        return []

    def gib(value: int | None) -> str:
        return "-" if value is None else f"{value / 2**30:.1f}"

    lines = [f"{'gpu':<18} {'util':>5} {'mem GiB':>13} {'temp':>5} {'power':>7}  uuid / member"]
    for g in gpus:
        util = "-" if g.utilization is None else f"{g.utilization:.0%}"
        memory = f"{gib(g.memory_used_bytes)}/{gib(g.memory_total_bytes)}"
        temp = "-" if g.temperature_c is None else f"{g.temperature_c:g}C"
        power = "-" if g.power_w is None else f"{g.power_w:.0f}W"
        mig = " (MIG on)" if g.mig_enabled else ""
        lines.append(f"{g.label:<18} {util:>5} {memory:>13} {temp:>5} {power:>7}  {g.uuid}{mig}  {g.member or '-'}")
    return lines


def _format_spill(spill: dict[str, Any]) -> str:
    if spill["fallback"] is None:
        line = "spill: none (no fallback model; pool_fallback = none)"
    else:
        price = spill["price"]
        cost = f"${price[0]:g} / ${price[1]:g} per million input / output tokens" if price else "no price set"
        line = f"spill: to {spill['fallback']} ({cost})"
    if "requests" not in spill:
        return f"{line}; counts: give --front with the URL of a running `pool serve`"
    return (
        f"{line}; {spill['requests']} request(s) spilled, {spill['input_tokens']} input / "
        f"{spill['output_tokens']} output tokens, ${spill['cost_usd']:.4f} (from {spill['source']})"
    )


def pool_serve(settings: Settings, host: str, port: int, *, say: Say) -> None:
    """Serve the OpenAI-compatible front over ``pool_members`` until stopped (blocking).

    Raises:
        ConfigError: no members, or auth is required (off loopback) and no token is configured.
    """
    import uvicorn

    from mcphive._asgi import http_url, listening_socket
    from mcphive._backends import build_model
    from mcphive.inference.pool import PoolModel
    from mcphive.inference.pool.front import build_front
    from mcphive.inference.pool.gpu import GpuSampler

    pool = build_model(settings.model_copy(update={"model": "pool"}))
    assert isinstance(pool, PoolModel)  # model "pool" always builds one
    # GPU figures on /metrics only where there is a GPU to read: a CPU machine pays nothing per scrape.
    gpus = GpuSampler(lambda: _placements(settings)) if read_gpu_stats() else None
    app = build_front(pool, settings.policy, bind_host=host, gpus=gpus)
    sock = listening_socket(host, port)  # before saying where: a taken port is one clear line, not a uvicorn log
    say(f"OpenAI-compatible front on {http_url(host, sock.getsockname()[1])}/v1 over {len(pool.members)} member(s)")
    config = uvicorn.Config(app, log_level="warning", ws="none", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
