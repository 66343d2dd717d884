"""Which GPUs (and MIG slices) this machine has, and the plan of pool members to start on them.

The inventory comes from ``nvidia-smi -L`` (always there with the driver) and, when ``nvidia-ml-py``
is installed, NVML (memory per device). The plan puts one server on each whole GPU, or on each MIG
slice of a GPU that has MIG enabled, pinned with ``CUDA_VISIBLE_DEVICES``; on a machine without GPUs
it falls back to llama.cpp members on the CPU, as :class:`~mcphive.inference.pool.PoolLauncher` starts them.
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from mcphive.errors import ConfigError
from mcphive.inference.pool.gpu import nvml_dump, stats_from_nvml_dump

__all__ = [
    "DeviceInventory",
    "GpuDevice",
    "MemberPlan",
    "MigDevice",
    "detect_inventory",
    "parse_nvidia_smi_list",
    "parse_nvml_dump",
    "plan_members",
    "server_kind",
]

logger = logging.getLogger(__name__)

_GPU_LINE = re.compile(r"^GPU\s+(?P<index>\d+):\s+(?P<name>.+?)\s+\(UUID:\s*(?P<uuid>GPU-[0-9a-fA-F-]+)\)\s*$")
_MIG_LINE = re.compile(
    r"^MIG\s+(?P<profile>\S+)\s+Device\s+(?P<index>\d+):\s+\(UUID:\s*(?P<uuid>MIG-[0-9a-fA-F/-]+)\)\s*$"
)

ServerKind = Literal["vllm", "llama_cpp"]


@dataclass(frozen=True)
class MigDevice:
    """One MIG slice of a GPU, as ``nvidia-smi -L`` lists it (``MIG 1g.18gb Device 0: (UUID: MIG-...)``)."""

    gpu_index: int
    index: int
    profile: str
    uuid: str


@dataclass(frozen=True)
class GpuDevice:
    """One physical GPU; ``migs`` lists its MIG slices (empty when MIG is off)."""

    index: int
    name: str
    uuid: str
    memory_total_mib: int | None = None
    migs: tuple[MigDevice, ...] = ()


@dataclass(frozen=True)
class DeviceInventory:
    """The GPUs of one machine; empty on a machine without NVIDIA GPUs."""

    gpus: tuple[GpuDevice, ...] = ()
    driver: str | None = None

    @property
    def slots(self) -> list[GpuDevice | MigDevice]:
        """Where members go: every MIG slice of a MIG-enabled GPU, else the whole GPU."""
        return [slot for gpu in self.gpus for slot in (gpu.migs or (gpu,))]


@dataclass(frozen=True)
class MemberPlan:
    """How to start one pool member.

    Attributes:
        index: The member's number (0-based), also in its log file's name.
        device: What it runs on: ``GPU 0``, ``MIG 1g.18gb on GPU 0`` or ``cpu``.
        argv: The server command line.
        env: Environment variables to set on top of the parent's (``CUDA_VISIBLE_DEVICES``).
        port: The port it listens on.
        url: Its ``/v1`` root, what ``pool_members`` takes.
        log_path: Where its output goes.
    """

    index: int
    device: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    port: int = 0
    url: str = ""
    log_path: Path = Path()


def parse_nvidia_smi_list(text: str) -> DeviceInventory:
    """Parse ``nvidia-smi -L``: ``GPU <i>: <name> (UUID: GPU-...)`` lines, each followed by its ``MIG ...`` lines.

    Raises:
        ConfigError: a MIG line comes before any GPU line, or a non-blank line is neither kind.
    """
    gpus: list[GpuDevice] = []
    for line_no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if (gpu := _GPU_LINE.match(line)) is not None:
            gpus.append(GpuDevice(int(gpu["index"]), gpu["name"], gpu["uuid"]))
        elif (mig := _MIG_LINE.match(line)) is not None and gpus:
            parent = gpus[-1]
            slice_ = MigDevice(parent.index, int(mig["index"]), mig["profile"], mig["uuid"])
            gpus[-1] = replace(parent, migs=(*parent.migs, slice_))
        else:
            raise ConfigError(
                f"nvidia-smi -L line {line_no} is neither a GPU nor a MIG device: {line[:120]!r}; "
                "check the driver's output format (expected 'GPU 0: <name> (UUID: GPU-...)')"
            )
    return DeviceInventory(tuple(gpus))


def parse_nvml_dump(data: Mapping[str, Any], inventory: DeviceInventory | None = None) -> DeviceInventory:
    """Merge NVML facts (``{"driver", "devices": [{"index", "name", "uuid", "memory": {"total"}}]}``) into an inventory.

    Devices known by UUID get their memory filled in; devices NVML lists but ``inventory`` lacks are added.
    """
    known = {gpu.uuid: gpu for gpu in (inventory.gpus if inventory else ())}
    for device in stats_from_nvml_dump(data):
        if device.mig_index is not None:
            continue  # slices come from nvidia-smi -L, as CUDA names them
        memory = device.memory_total_bytes
        mib = int(memory) // (1024 * 1024) if memory else None
        base = known.get(device.uuid) or GpuDevice(device.gpu_index, device.name, device.uuid)
        known[base.uuid] = replace(base, memory_total_mib=mib)
    gpus = tuple(sorted(known.values(), key=lambda g: g.index))
    return DeviceInventory(gpus, driver=data.get("driver") or (inventory.driver if inventory else None))


def detect_inventory(nvidia_smi: str | None = None) -> DeviceInventory:
    """This machine's GPUs: ``nvidia-smi -L``, completed by NVML when ``nvidia-ml-py`` is installed.

    Blocking (runs a subprocess): call it through ``anyio.to_thread.run_sync`` from async code.
    Returns an empty inventory when there is no ``nvidia-smi`` or it fails (no driver, no GPU).
    """
    binary = nvidia_smi or shutil.which("nvidia-smi")
    inventory = DeviceInventory()
    if binary:
        try:
            done = subprocess.run([binary, "-L"], capture_output=True, text=True, timeout=30, check=True)
            inventory = parse_nvidia_smi_list(done.stdout)
        except (OSError, subprocess.SubprocessError) as e:
            logger.info("nvidia-smi -L failed (%s); assuming no GPUs", e)
    nvml = nvml_dump() if inventory.gpus else None
    return parse_nvml_dump(nvml, inventory) if nvml else inventory


def server_kind(command: Sequence[str]) -> ServerKind:
    """``vllm`` when the command runs vLLM (``vllm serve``, ``python -m vllm.entrypoints...``), else ``llama_cpp``."""
    return "vllm" if any(Path(part).name == "vllm" or part.startswith("vllm.") for part in command) else "llama_cpp"


def _server_argv(
    command: Sequence[str], model: str, name: str | None, port: int, host: str, extra: Sequence[str]
) -> list[str]:
    argv = list(command)
    if server_kind(command) == "vllm":
        # `vllm serve` takes the model as a positional; the api_server module as --model.
        argv += [model] if "serve" in command else ["--model", model]
        argv += ["--host", host, "--port", str(port), "--enable-prefix-caching"]
        argv += ["--served-model-name", name] if name else []
    else:
        argv += ["--model", model, "--host", host, "--port", str(port)]
        argv += ["--model_alias", name] if name else []
    return [*argv, *extra]


def plan_members(
    inventory: DeviceInventory,
    *,
    command: str | Sequence[str] = "vllm serve",
    base_port: int = 8000,
    model: str,
    served_name: str | None = None,
    extra_args: Sequence[str] = (),
    log_dir: Path = Path("."),
    host: str = "127.0.0.1",
    cpu_members: int = 2,
    cpu_command: Sequence[str] | None = None,
    cpu_args: Sequence[str] = ("--n_threads", "1", "--n_threads_batch", "1", "--interrupt_requests", "false"),
) -> list[MemberPlan]:
    """One member per whole GPU or MIG slice, or ``cpu_members`` llama.cpp members when there is no GPU.

    Args:
        inventory: From :func:`detect_inventory` or the parsers.
        command: The GPU server command: ``"vllm serve"``, another venv's
            ``"/opt/vllm/bin/python -m vllm.entrypoints.openai.api_server"`` or a llama.cpp server;
            a string is split like a shell would.
        base_port: Member ``i`` listens on ``base_port + i``.
        model: The model the servers load (a Hugging Face id for vLLM, a GGUF path for llama.cpp).
        served_name: The name members answer to (``--served-model-name`` / ``--model_alias``); default: ``model``.
        extra_args: More flags for every GPU member.
        log_dir: Member ``i`` logs to ``log_dir/member-<i>.log``.
        host: The address members bind and the pool connects to.
        cpu_members: How many CPU members without GPUs.
        cpu_command: The CPU server command; default: this Python's ``-m llama_cpp.server``.
        cpu_args: Flags of the CPU members (one thread each, no interruption of a running stream).

    Raises:
        ConfigError: the ports would run past 65535, or there is no GPU and ``cpu_members`` is below 1.
    """
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    slots = inventory.slots
    count = len(slots) or cpu_members
    if count < 1 or base_port < 1 or base_port + count - 1 > 65535:
        raise ConfigError(
            f"cannot plan {count} members from port {base_port}; use a base port between 1 and {65536 - max(count, 1)} "
            "and at least one member"
        )
    plans: list[MemberPlan] = []
    for index in range(count):
        port = base_port + index
        env: dict[str, str] = {}
        if slots:
            slot = slots[index]
            server = _server_argv(argv, model, served_name, port, host, extra_args)
            # CUDA takes a MIG slice only by its full UUID; a GPU by index.
            env["CUDA_VISIBLE_DEVICES"] = slot.uuid if isinstance(slot, MigDevice) else str(slot.index)
            device = (
                f"MIG {slot.profile} on GPU {slot.gpu_index}" if isinstance(slot, MigDevice) else f"GPU {slot.index}"
            )
        else:
            cpu = list(cpu_command or (sys.executable, "-m", "llama_cpp.server"))
            server = _server_argv(cpu, model, served_name, port, host, cpu_args)
            env["CUDA_VISIBLE_DEVICES"] = ""
            device = "cpu"
        plans.append(
            MemberPlan(
                index=index,
                device=device,
                argv=tuple(server),
                env=env,
                port=port,
                url=f"http://{host}:{port}/v1",
                log_path=log_dir / f"member-{index}.log",
            )
        )
    return plans
