"""GPU inventory parsing (real H200 output, a synthetic MIG layout) and the member launch plan."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from pathlib import Path

import httpx2
import pytest

from mcphive._pool_cli import format_status, placements_path, pool_status, pool_up
from mcphive.errors import ConfigError, UsageError
from mcphive.inference.pool.inventory import (
    DeviceInventory,
    MigDevice,
    detect_inventory,
    parse_nvidia_smi_list,
    parse_nvml_dump,
    plan_members,
    server_kind,
)
from mcphive.settings import Settings

FIXTURES = Path(__file__).parents[2] / "fixtures" / "gpu"
H200_UUID = "GPU-885308fe-8859-ec22-3ea7-33608b0eb935"


def _h200() -> DeviceInventory:
    return parse_nvidia_smi_list((FIXTURES / "nvidia-smi-L.txt").read_text())


def _mig() -> DeviceInventory:
    return parse_nvidia_smi_list((FIXTURES / "nvidia-smi-L-mig.synthetic.txt").read_text())


def test_the_captured_h200_listing_is_one_whole_gpu_without_mig_slices() -> None:
    inventory = _h200()
    assert [(g.index, g.name, g.uuid, g.migs) for g in inventory.gpus] == [(0, "NVIDIA H200", H200_UUID, ())]
    assert inventory.slots == list(inventory.gpus)


def test_nvml_data_fills_in_the_memory_and_driver_of_the_gpus_nvidia_smi_listed() -> None:
    nvml = json.loads((FIXTURES / "nvml.json").read_text())
    inventory = parse_nvml_dump(nvml, _h200())
    assert inventory.driver == "580.159.04"
    assert len(inventory.gpus) == 1
    assert inventory.gpus[0].memory_total_mib == 150754820096 // (1024 * 1024)


def test_mig_lines_belong_to_the_gpu_above_them_and_replace_it_as_slots() -> None:
    inventory = _mig()
    assert [len(g.migs) for g in inventory.gpus] == [3, 0]
    slots = inventory.slots
    assert [type(s).__name__ for s in slots] == ["MigDevice", "MigDevice", "MigDevice", "GpuDevice"]
    first = slots[0]
    assert isinstance(first, MigDevice)
    assert (first.gpu_index, first.index, first.profile) == (0, 0, "3g.71gb")
    assert first.uuid == "MIG-4f1c2d3e-5a6b-5c7d-8e9f-0a1b2c3d4e5f"


def test_a_line_that_is_neither_gpu_nor_mig_is_refused_with_the_line_number() -> None:
    with pytest.raises(ConfigError, match="line 2"):
        parse_nvidia_smi_list(f"GPU 0: NVIDIA H200 (UUID: {H200_UUID})\nNo devices were found\n")


def test_a_mig_line_before_any_gpu_is_refused() -> None:
    with pytest.raises(ConfigError, match="line 1"):
        parse_nvidia_smi_list("  MIG 1g.18gb     Device  0: (UUID: MIG-0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0)\n")


def test_a_vllm_plan_pins_each_whole_gpu_by_index_with_prefix_caching(tmp_path: Path) -> None:
    plans = plan_members(_h200(), command="vllm serve", base_port=9000, model="Qwen/Qwen3-8B", log_dir=tmp_path)
    assert len(plans) == 1
    plan = plans[0]
    assert plan.env == {"CUDA_VISIBLE_DEVICES": "0"}
    assert plan.argv[:3] == ("vllm", "serve", "Qwen/Qwen3-8B")
    assert "--enable-prefix-caching" in plan.argv
    assert plan.argv[plan.argv.index("--port") + 1] == "9000"
    assert (plan.url, plan.log_path, plan.device) == ("http://127.0.0.1:9000/v1", tmp_path / "member-0.log", "GPU 0")


def test_a_mig_plan_pins_each_slice_by_its_full_mig_uuid_on_its_own_port(tmp_path: Path) -> None:
    plans = plan_members(_mig(), command="vllm serve", base_port=8000, model="m", extra_args=("--dtype", "auto"))
    assert [p.env["CUDA_VISIBLE_DEVICES"] for p in plans] == [
        "MIG-4f1c2d3e-5a6b-5c7d-8e9f-0a1b2c3d4e5f",
        "MIG-6a7b8c9d-0e1f-5a2b-9c3d-4e5f6a7b8c9d",
        "MIG-0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0",
        "1",
    ]
    assert [p.port for p in plans] == [8000, 8001, 8002, 8003]
    assert plans[1].device == "MIG 2g.35gb on GPU 0"
    assert all(p.argv[-2:] == ("--dtype", "auto") for p in plans)


def test_the_api_server_module_from_another_venv_gets_the_model_as_a_flag() -> None:
    command = "/opt/vllm/bin/python -m vllm.entrypoints.openai.api_server"
    plan = plan_members(_h200(), command=command, model="m", served_name="pooled")[0]
    assert server_kind(plan.argv) == "vllm"
    assert plan.argv[:5] == ("/opt/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--model", "m")
    assert plan.argv[plan.argv.index("--served-model-name") + 1] == "pooled"


def test_without_gpus_the_plan_falls_back_to_cpu_llama_cpp_members(tmp_path: Path) -> None:
    plans = plan_members(DeviceInventory(), model="/models/smol.gguf", served_name="smollm2", cpu_members=3)
    assert [p.device for p in plans] == ["cpu"] * 3
    assert plans[0].argv[:3] == (sys.executable, "-m", "llama_cpp.server")
    assert server_kind(plans[0].argv) == "llama_cpp"
    assert "--enable-prefix-caching" not in plans[0].argv
    assert plans[2].argv[plans[2].argv.index("--model_alias") + 1] == "smollm2"
    assert all(p.env["CUDA_VISIBLE_DEVICES"] == "" for p in plans)


def test_ports_past_65535_are_refused() -> None:
    with pytest.raises(ConfigError, match="base port"):
        plan_members(_mig(), model="m", base_port=65534)


def test_a_machine_whose_nvidia_smi_fails_has_an_empty_inventory(tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the driver' >&2\nexit 9\n"
    )
    fake.chmod(0o755)
    assert detect_inventory(str(fake)) == DeviceInventory()


def test_detect_inventory_parses_what_nvidia_smi_prints(tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\ncat '{FIXTURES / 'nvidia-smi-L-mig.synthetic.txt'}'\n")
    fake.chmod(0o755)
    assert detect_inventory(str(fake)).gpus == _mig().gpus


def test_pool_up_refuses_more_members_than_the_machine_has_gpu_slots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\ncat '{FIXTURES / 'nvidia-smi-L-mig.synthetic.txt'}'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    slots = len(_mig().slots)
    with pytest.raises(UsageError, match=f"asked for 99 members but this machine has {slots} GPU slot"):
        pool_up(Settings(data_dir=tmp_path), 99, model="Qwen/Qwen3-8B", base_port=_free_port(), say=lambda _: None)
    assert not (tmp_path / "pool").exists()  # nothing was started or recorded


def test_pool_up_refuses_a_port_something_listens_on_before_starting_any_member(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UsageError, match=rf"pool member 1: cannot listen on 127.0.0.1:{port}: it is in use"):
            pool_up(Settings(data_dir=tmp_path), 2, base_port=port - 1, say=lambda _: None)
    assert not list((tmp_path / "pool").glob("member-*.log"))  # nothing was started


def test_a_members_failure_shows_the_last_lines_of_its_log_cut_to_a_readable_width(tmp_path: Path) -> None:
    from mcphive._pool_cli import _log_tail

    log = tmp_path / "member-0.log"
    log.write_text(
        "metadata: " + "x" * 5000 + "\n" + "".join(f"line {i}\n" for i in range(20)) + "ERROR: bind failed\n"
    )
    tail = _log_tail(log).splitlines()
    assert tail[-1] == "ERROR: bind failed" and len(tail) == 8 and tail[0] == "line 13"
    log.write_text("y" * 5000)
    assert _log_tail(log) == "y" * 239 + "…"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_pool_up_starts_cpu_members_that_pool_status_sees_and_stops_them(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # no nvidia-smi: the CPU plan, even on a GPU box
    settings = settings.model_copy(update={"local_threads": 1, "local_context": 512})
    port = _free_port()
    lines: list[str] = []
    up, stop = threading.Event(), threading.Event()

    def say(line: str) -> None:
        lines.append(line)
        if line.startswith("members are up"):
            up.set()

    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(pool_up(settings, 1, base_port=port, say=say, stop=stop)))
    thread.start()
    try:
        assert up.wait(120), lines
        url = f"http://127.0.0.1:{port}/v1"
        assert f"pool_members = {json.dumps([url])}" in lines
        status = pool_status(settings.model_copy(update={"pool_members": [url]}))
        rows = status["members"]
        assert [(r["url"], r["breaker"], r["models"], r["load"]) for r in rows] == [(url, "closed", ["smollm2"], 0.0)]
        assert "smollm2" in format_status(status)
        assert status["gpus"] == []  # this machine has no GPU: no rows, and nothing recorded for CPU members
        assert not placements_path(settings).exists()
    finally:
        stop.set()
        thread.join(60)
    assert result == [0]
    with pytest.raises(httpx2.TransportError):
        httpx2.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)


def test_pool_status_without_members_says_how_to_configure_them(settings: Settings) -> None:
    with pytest.raises(UsageError, match="pool_members"):
        pool_status(settings)
