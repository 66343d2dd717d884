"""GPU figures per pool member: utilisation, memory and MIG layout, from NVML or ``nvidia-smi``.

Where NVIDIA's management library is installed (``nvidia-ml-py``, the ``gpu`` extra) each reading comes
from NVML: every GPU, and every MIG slice of a GPU that has MIG on. Without it, ``nvidia-smi
--query-gpu`` gives the whole GPUs' figures. On a machine with neither there is nothing to read and
nothing is polled.

A reading is a list of :class:`GpuStats`, one per GPU or slice. :func:`assign_members` labels each with
the pool member that runs on it, from the placement ``pool up`` records (the ``CUDA_VISIBLE_DEVICES``
value each member was started with); :func:`render_gpu_metrics` writes the Prometheus lines the pool's
HTTP front adds to its ``/metrics``, and :class:`GpuSampler` caches readings so that scrapes cost one
NVML read a second at most.

NVML reports no utilisation for a MIG slice (nor for a GPU whose MIG mode is on); such figures are
``None`` here and absent from the metrics rather than zero.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mcphive._fs import atomic_write

__all__ = [
    "GpuSampler",
    "GpuStats",
    "assign_members",
    "load_placements",
    "nvml_dump",
    "parse_query_csv",
    "read_gpu_stats",
    "render_gpu_metrics",
    "save_placements",
    "stats_from_nvml_dump",
]

logger = logging.getLogger(__name__)

QUERY_FIELDS = (
    "index,uuid,name,memory.total,memory.used,utilization.gpu,utilization.memory,temperature.gpu,power.draw,"
    "mig.mode.current"
)
"""The ``nvidia-smi --query-gpu`` fields :func:`parse_query_csv` reads."""

_MIB = 1024 * 1024
_PROFILE = re.compile(r"\b(\d+g\.\d+gb)\b")


@dataclass(frozen=True)
class GpuStats:
    """One GPU, or one MIG slice of a GPU, at the moment it was read.

    Attributes:
        gpu_index: The GPU's index (a slice's parent GPU for a slice).
        uuid: ``GPU-...`` or, for a slice, ``MIG-...``: what ``CUDA_VISIBLE_DEVICES`` takes.
        name: The product name, e.g. ``NVIDIA H200``.
        mig_index: The slice's number under its GPU; ``None`` for a whole GPU.
        profile: The slice's MIG profile, e.g. ``1g.18gb``; ``None`` for a whole GPU.
        mig_enabled: For a whole GPU, whether its MIG mode is on (its members then run on its slices).
        memory_total_bytes, memory_used_bytes: Frame-buffer memory, when reported.
        utilization: Share of the last sample period a kernel ran (0-1); NVML gives none for MIG slices.
        memory_utilization: Share of the period memory was read or written (0-1).
        temperature_c: Degrees Celsius.
        power_w: Power draw in watts.
        member: The pool member running on it (its ``/v1`` URL), once :func:`assign_members` knows.
    """

    gpu_index: int
    uuid: str
    name: str
    mig_index: int | None = None
    profile: str | None = None
    mig_enabled: bool = False
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    utilization: float | None = None
    memory_utilization: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    member: str | None = None

    @property
    def label(self) -> str:
        """``GPU 0`` or ``MIG 1g.18gb 0/1`` (GPU 0, slice 1), as ``pool status`` prints it."""
        if self.mig_index is None:
            return f"GPU {self.gpu_index}"
        return f"MIG {self.profile or '?'} {self.gpu_index}/{self.mig_index}"


# --- NVML -------------------------------------------------------------------------------------------------------


def _nvml_value(call: Callable[..., Any], *args: Any) -> Any:
    """``call(*args)``, or ``None`` where NVML answers that the device does not support it (MIG slices, some boards)."""
    import pynvml

    try:
        return call(*args)
    except pynvml.NVMLError as e:
        logger.debug("NVML: %s", e)
        return None


def _memory(pynvml: Any, handle: Any) -> dict[str, int] | None:
    info = _nvml_value(pynvml.nvmlDeviceGetMemoryInfo, handle)
    return None if info is None else {"total": int(info.total), "used": int(info.used), "free": int(info.free)}


def _migs(pynvml: Any, handle: Any, max_count: int) -> list[dict[str, Any]]:
    slices = []
    for j in range(max_count):
        mig = _nvml_value(pynvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, j)
        if mig is None:  # slots without a slice answer NOT_FOUND
            continue
        slices.append(
            {
                "index": j,
                "name": pynvml.nvmlDeviceGetName(mig),
                "uuid": pynvml.nvmlDeviceGetUUID(mig),
                "memory": _memory(pynvml, mig),
            }
        )
    return slices


def nvml_dump() -> dict[str, Any] | None:
    """Everything :func:`stats_from_nvml_dump` reads, straight from NVML; ``None`` without ``nvidia-ml-py`` or a driver.

    The shape is plain JSON (``{"driver", "nvml", "devices": [{"index", "name", "uuid", "memory", "utilization",
    "mig_mode", "max_mig_devices", "temperature_c", "power_mw", "pci_bus_id", "migs"}]}``), so a dump captured on
    one machine is a test fixture on another. Blocking: call it from a worker thread in async code.
    """
    try:
        import pynvml  # optional: nvidia-ml-py, the gpu extra
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        logger.info("NVML is installed but unusable (%s)", e)
        return None
    try:
        devices = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            rates = _nvml_value(pynvml.nvmlDeviceGetUtilizationRates, handle)
            mig_mode = _nvml_value(pynvml.nvmlDeviceGetMigMode, handle)
            pci = _nvml_value(pynvml.nvmlDeviceGetPciInfo, handle)
            max_migs = _nvml_value(pynvml.nvmlDeviceGetMaxMigDeviceCount, handle)
            devices.append(
                {
                    "index": index,
                    "name": pynvml.nvmlDeviceGetName(handle),
                    "uuid": pynvml.nvmlDeviceGetUUID(handle),
                    "memory": _memory(pynvml, handle),
                    "utilization": None if rates is None else {"gpu": rates.gpu, "memory": rates.memory},
                    "mig_mode": None if mig_mode is None else list(mig_mode),
                    "max_mig_devices": max_migs,
                    "temperature_c": _nvml_value(pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU),
                    "power_mw": _nvml_value(pynvml.nvmlDeviceGetPowerUsage, handle),
                    "pci_bus_id": None if pci is None else _text(pci.busId),
                    "migs": _migs(pynvml, handle, max_migs or 0) if mig_mode and mig_mode[0] else [],
                }
            )
        return {
            "driver": pynvml.nvmlSystemGetDriverVersion(),
            "nvml": pynvml.nvmlSystemGetNVMLVersion(),
            "devices": devices,
        }
    finally:
        pynvml.nvmlShutdown()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _ratio(percent: Any) -> float | None:
    return None if percent is None else float(percent) / 100.0


def stats_from_nvml_dump(data: Mapping[str, Any]) -> list[GpuStats]:
    """One :class:`GpuStats` per GPU and per MIG slice of an :func:`nvml_dump` (or a dump captured elsewhere)."""
    out: list[GpuStats] = []
    for device in data.get("devices", []):
        memory = device.get("memory") or {}
        rates = device.get("utilization") or {}
        mig_mode = device.get("mig_mode") or [0]
        power = device.get("power_mw")
        gpu = GpuStats(
            gpu_index=int(device["index"]),
            uuid=str(device["uuid"]),
            name=str(device["name"]),
            mig_enabled=bool(mig_mode[0]),
            memory_total_bytes=memory.get("total"),
            memory_used_bytes=memory.get("used"),
            utilization=_ratio(rates.get("gpu")),
            memory_utilization=_ratio(rates.get("memory")),
            temperature_c=device.get("temperature_c"),
            power_w=None if power is None else power / 1000.0,
        )
        out.append(gpu)
        for mig in device.get("migs") or []:
            mig_memory = mig.get("memory") or {}
            profile = _PROFILE.search(str(mig.get("name", "")))
            out.append(
                GpuStats(
                    gpu_index=gpu.gpu_index,
                    uuid=str(mig["uuid"]),
                    name=gpu.name,
                    mig_index=int(mig["index"]),
                    profile=profile.group(1) if profile else None,
                    memory_total_bytes=mig_memory.get("total"),
                    memory_used_bytes=mig_memory.get("used"),
                )
            )
    return out


# --- nvidia-smi --------------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"^\s*(-?[\d.]+)")


def _number(cell: str) -> float | None:
    """``143771 MiB`` / ``0 %`` / ``105.40 W`` / ``37`` -> the number; ``[N/A]`` and friends -> ``None``."""
    match = _NUMBER.match(cell)
    return float(match.group(1)) if match else None


def parse_query_csv(text: str) -> list[GpuStats]:
    """Parse ``nvidia-smi --query-gpu=<QUERY_FIELDS> --format=csv`` (with or without ``noheader``/``nounits``).

    Raises:
        ValueError: a row does not have the fields of :data:`QUERY_FIELDS`.
    """
    width = len(QUERY_FIELDS.split(","))
    out = []
    for row in csv.reader(io.StringIO(text), skipinitialspace=True):
        if not row or row[0].strip() == "index":
            continue  # blank line or the header
        if len(row) != width:
            raise ValueError(f"nvidia-smi --query-gpu row has {len(row)} fields, expected {width}: {row!r}")
        index, uuid, name, total, used, util, mem_util, temp, power, mig = (cell.strip() for cell in row)
        total_mib, used_mib = _number(total), _number(used)
        out.append(
            GpuStats(
                gpu_index=int(index),
                uuid=uuid,
                name=name,
                mig_enabled=mig.lower() == "enabled",
                memory_total_bytes=None if total_mib is None else int(total_mib * _MIB),
                memory_used_bytes=None if used_mib is None else int(used_mib * _MIB),
                utilization=_ratio(_number(util)),
                memory_utilization=_ratio(_number(mem_util)),
                temperature_c=_number(temp),
                power_w=_number(power),
            )
        )
    return out


def read_gpu_stats(nvidia_smi: str | None = None) -> list[GpuStats]:
    """This machine's GPU figures: NVML when ``nvidia-ml-py`` works, else ``nvidia-smi --query-gpu``, else none.

    Blocking (NVML calls or a subprocess): from async code use :class:`GpuSampler` or a worker thread.
    """
    if (dump := nvml_dump()) is not None:
        return stats_from_nvml_dump(dump)
    binary = nvidia_smi or shutil.which("nvidia-smi")
    if not binary:
        return []
    try:
        done = subprocess.run(
            [binary, f"--query-gpu={QUERY_FIELDS}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return parse_query_csv(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        logger.info("nvidia-smi --query-gpu failed (%s); no GPU figures", e)
        return []


# --- members -----------------------------------------------------------------------------------------------------


def assign_members(stats: Iterable[GpuStats], placements: Mapping[str, str]) -> list[GpuStats]:
    """Label each GPU or slice with the member started on it.

    Args:
        stats: A reading.
        placements: Member URL -> the ``CUDA_VISIBLE_DEVICES`` it was started with: a GPU index (``"0"``), a
            ``GPU-`` UUID or a ``MIG-`` UUID. A member placed on several devices (``"0,1"``) labels each.
    """
    owners: dict[str, str] = {}
    for url, visible in placements.items():
        for device in filter(None, (part.strip() for part in visible.split(","))):
            owners[device] = url
    out = []
    for s in stats:
        key = str(s.gpu_index) if s.mig_index is None and str(s.gpu_index) in owners else s.uuid
        out.append(replace(s, member=owners.get(key)))
    return out


def save_placements(path: Path, placements: Mapping[str, str]) -> None:
    """Record which member runs on which device (``pool up`` does); atomic, so a reader sees the old file or the new."""
    atomic_write(path, (json.dumps({"members": dict(placements)}, indent=2) + "\n").encode("utf-8"))


def load_placements(path: Path) -> dict[str, str]:
    """What :func:`save_placements` wrote; empty when there is no such file or it is unreadable (logged)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(url): str(visible) for url, visible in data["members"].items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        logger.warning("ignoring the member placements in %s (%s); GPU figures will not name members", path, e)
        return {}


# --- Prometheus --------------------------------------------------------------------------------------------------

_GAUGES: tuple[tuple[str, str, Callable[[GpuStats], float | int | None]], ...] = (
    ("memory_total_bytes", "Frame-buffer memory of the GPU or MIG slice.", lambda s: s.memory_total_bytes),
    ("memory_used_bytes", "Frame-buffer memory in use.", lambda s: s.memory_used_bytes),
    (
        "utilization_ratio",
        "Share of the last sample period a kernel ran (not reported for MIG).",
        lambda s: s.utilization,
    ),
    (
        "memory_utilization_ratio",
        "Share of the last sample period memory was read or written.",
        lambda s: s.memory_utilization,
    ),
    ("temperature_celsius", "GPU temperature.", lambda s: s.temperature_c),
    ("power_watts", "Power draw.", lambda s: s.power_w),
)


def _labels(s: GpuStats, **extra: str) -> str:
    """``s``'s identifying labels (and ``extra`` ones after them), quoted and escaped for the exposition format."""
    pairs = {
        "gpu": str(s.gpu_index),
        "mig": "" if s.mig_index is None else str(s.mig_index),
        "uuid": s.uuid,
        "member": s.member or "",
        **extra,
    }
    return ",".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in pairs.items())


def render_gpu_metrics(stats: Sequence[GpuStats]) -> list[str]:
    """Prometheus lines for a reading (none for an empty one): an info line per device and its gauges."""
    if not stats:
        return []
    lines = [
        "# HELP mcphive_pool_gpu_info One per GPU and MIG slice: its name, MIG profile and mode, and the member on it.",
        "# TYPE mcphive_pool_gpu_info gauge",
    ]
    for s in stats:
        mig_mode = "enabled" if s.mig_enabled else "disabled"
        lines.append(
            f"mcphive_pool_gpu_info{{{_labels(s, name=s.name, profile=s.profile or '', mig_mode=mig_mode)}}} 1"
        )
    for name, help_text, value_of in _GAUGES:
        values = [(s, value_of(s)) for s in stats]
        if all(value is None for _, value in values):
            continue
        lines += [f"# HELP mcphive_pool_gpu_{name} {help_text}", f"# TYPE mcphive_pool_gpu_{name} gauge"]
        # repr, not :g: byte counts need every digit (a 17.5 GiB slice is not 1.87905e+10 bytes)
        lines += [f"mcphive_pool_gpu_{name}{{{_labels(s)}}} {value!r}" for s, value in values if value is not None]
    return lines


class GpuSampler:
    """Cached GPU readings for async callers: at most one read per ``max_age`` seconds, in a worker thread.

    Args:
        placements: Member URL -> ``CUDA_VISIBLE_DEVICES`` (see :func:`assign_members`), or a function that gives
            them, called at each read (so members that ``pool up`` starts later are named too).
        reader: What reads the figures; default :func:`read_gpu_stats`.
        max_age: How long a reading is served before the next read.
    """

    def __init__(
        self,
        placements: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
        *,
        reader: Callable[[], list[GpuStats]] = read_gpu_stats,
        max_age: float = 1.0,
    ) -> None:
        import anyio

        fixed = dict(placements) if isinstance(placements, Mapping) else {}
        self._placements = placements if callable(placements) else lambda: fixed
        self._reader = reader
        self._max_age = max_age
        self._lock = anyio.Lock()
        self._reading: list[GpuStats] = []
        self._read_at = -float("inf")

    def _read(self) -> list[GpuStats]:
        return assign_members(self._reader(), self._placements())

    async def sample(self) -> list[GpuStats]:
        """The latest reading, labelled with members; read anew when older than ``max_age``."""
        import anyio

        async with self._lock:
            if time.monotonic() - self._read_at >= self._max_age:
                self._reading = await anyio.to_thread.run_sync(self._read)
                self._read_at = time.monotonic()
            return self._reading
