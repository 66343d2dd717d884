"""GPU figures per member: the real H200's NVML dump and nvidia-smi CSV, a synthetic MIG layout, the metrics page."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from mcphive._pool_cli import _placements, _record_placements, format_status, placements_path
from mcphive.inference.pool.gpu import (
    GpuSampler,
    GpuStats,
    assign_members,
    load_placements,
    parse_query_csv,
    read_gpu_stats,
    render_gpu_metrics,
    save_placements,
    stats_from_nvml_dump,
)
from mcphive.inference.pool.inventory import parse_nvidia_smi_list, plan_members
from mcphive.inference.pool.metrics import parse_prometheus
from mcphive.settings import Settings

from .test_inventory import FIXTURES, H200_UUID

SLICE_UUID = "MIG-0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0"  # the 1g.18gb slice of the synthetic MIG layout


def _h200() -> list[GpuStats]:
    return stats_from_nvml_dump(json.loads((FIXTURES / "nvml.json").read_text()))


def _mig() -> list[GpuStats]:
    return stats_from_nvml_dump(json.loads((FIXTURES / "nvml-mig.synthetic.json").read_text()))


def test_the_captured_h200_nvml_dump_is_one_idle_whole_gpu() -> None:
    [gpu] = _h200()
    assert (gpu.gpu_index, gpu.uuid, gpu.name, gpu.mig_index, gpu.mig_enabled) == (
        0,
        H200_UUID,
        "NVIDIA H200",
        None,
        False,
    )
    assert gpu.memory_total_bytes == 150754820096 and gpu.memory_used_bytes == 644939776
    assert (gpu.utilization, gpu.memory_utilization, gpu.temperature_c) == (0.0, 0.0, 37)
    assert gpu.power_w == pytest.approx(92.273)


def test_nvidia_smi_csv_of_the_same_card_agrees_with_nvml_on_identity_and_memory() -> None:
    [from_csv] = parse_query_csv((FIXTURES / "nvidia-smi-query.csv").read_text())
    [from_nvml] = _h200()
    assert (from_csv.uuid, from_csv.name, from_csv.gpu_index) == (from_nvml.uuid, from_nvml.name, 0)
    assert from_csv.memory_total_bytes == from_nvml.memory_total_bytes  # 143771 MiB, to the byte
    assert (from_csv.utilization, from_csv.power_w, from_csv.mig_enabled) == (0.0, 105.4, False)


def test_the_csv_without_header_or_units_is_what_read_gpu_stats_asks_for_and_na_is_none() -> None:
    text = f"0, {H200_UUID}, NVIDIA H200, 143771, 2048, 35, 12, 44, [N/A], Enabled\n"
    [gpu] = parse_query_csv(text)
    assert gpu.memory_used_bytes == 2048 * 1024 * 1024
    assert (gpu.utilization, gpu.memory_utilization, gpu.power_w, gpu.mig_enabled) == (0.35, 0.12, None, True)


def test_a_csv_row_with_other_fields_is_refused_naming_the_row() -> None:
    with pytest.raises(ValueError, match="has 3 fields, expected 10"):
        parse_query_csv("0, GPU-x, NVIDIA H200\n")


def test_a_mig_gpu_lists_its_slices_with_profiles_and_no_made_up_utilisation() -> None:
    gpu0, *slices, gpu1 = _mig()
    assert gpu0.mig_enabled and gpu0.utilization is None
    assert [(s.label, s.profile, s.memory_total_bytes) for s in slices] == [
        ("MIG 3g.71gb 0/0", "3g.71gb", 75161927680),
        ("MIG 2g.35gb 0/1", "2g.35gb", 37580963840),
        ("MIG 1g.18gb 0/2", "1g.18gb", 18790481920),
    ]
    assert slices[2].uuid == SLICE_UUID and all(s.utilization is None and s.gpu_index == 0 for s in slices)
    assert (gpu1.label, gpu1.utilization, gpu1.power_w) == ("GPU 1", 0.87, 512.25)


def test_the_mig_layouts_nvml_and_csv_forms_agree_and_na_reads_as_none() -> None:
    from_csv = parse_query_csv((FIXTURES / "nvidia-smi-query-mig.synthetic.csv").read_text())
    whole = [s for s in _mig() if s.mig_index is None]
    assert [(s.uuid, s.memory_total_bytes) for s in from_csv] == [(s.uuid, s.memory_total_bytes) for s in whole]
    assert (from_csv[0].utilization, from_csv[0].mig_enabled, from_csv[1].utilization) == (None, True, 0.87)


def test_members_are_matched_by_gpu_index_or_by_slice_uuid() -> None:
    placements = {"http://127.0.0.1:8000/v1": SLICE_UUID, "http://127.0.0.1:8001/v1": "1"}
    owners = {s.label: s.member for s in assign_members(_mig(), placements)}
    assert owners == {
        "GPU 0": None,
        "MIG 3g.71gb 0/0": None,
        "MIG 2g.35gb 0/1": None,
        "MIG 1g.18gb 0/2": "http://127.0.0.1:8000/v1",
        "GPU 1": "http://127.0.0.1:8001/v1",
    }
    # A member started on two GPUs ("0,1") is named on both.
    assert {s.member for s in assign_members(_h200(), {"http://m/v1": "1,0"})} == {"http://m/v1"}


def test_the_metrics_page_parses_and_carries_each_devices_figures_and_member() -> None:
    stats = assign_members(_mig(), {"http://127.0.0.1:8001/v1": "1"})
    samples = parse_prometheus("\n".join(render_gpu_metrics(stats)) + "\n")
    info = [s for s in samples if s.name == "mcphive_pool_gpu_info"]
    assert [(s.labels["gpu"], s.labels["mig"], s.labels["profile"], s.labels["mig_mode"]) for s in info] == [
        ("0", "", "", "enabled"),
        ("0", "0", "3g.71gb", "disabled"),
        ("0", "1", "2g.35gb", "disabled"),
        ("0", "2", "1g.18gb", "disabled"),
        ("1", "", "", "disabled"),
    ]
    used = {s.labels["uuid"]: s.value for s in samples if s.name == "mcphive_pool_gpu_memory_used_bytes"}
    assert used[SLICE_UUID] == 10200547328 and len(used) == 5
    # Utilisation only where NVML gave one: GPU 1, not the MIG GPU nor its slices.
    [util] = [s for s in samples if s.name == "mcphive_pool_gpu_utilization_ratio"]
    assert (util.labels["member"], util.value) == ("http://127.0.0.1:8001/v1", 0.87)


def test_no_gpus_render_no_lines_and_this_cpu_machine_reads_none() -> None:
    assert render_gpu_metrics([]) == []
    assert read_gpu_stats(nvidia_smi="/nonexistent/nvidia-smi") == []


def test_the_sampler_reads_at_most_once_per_max_age_and_labels_members() -> None:
    reads = 0

    def reader() -> list[GpuStats]:
        nonlocal reads
        reads += 1
        return _h200()

    async def main() -> None:
        cached = GpuSampler({"http://m/v1": "0"}, reader=reader, max_age=3600)
        first, second = await cached.sample(), await cached.sample()
        assert reads == 1 and first is second and first[0].member == "http://m/v1"
        placements: dict[str, str] = {}
        fresh = GpuSampler(lambda: placements, reader=reader, max_age=0)
        assert (await fresh.sample())[0].member is None
        placements["http://late/v1"] = "0"  # a member started after the front: named at the next read
        assert (await fresh.sample())[0].member == "http://late/v1"
        assert reads == 3

    anyio.run(main)


def test_placements_round_trip_and_a_damaged_file_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = placements_path(Settings(data_dir=tmp_path))
    assert load_placements(path) == {}
    save_placements(path, {"http://127.0.0.1:8000/v1": SLICE_UUID})
    assert load_placements(path) == {"http://127.0.0.1:8000/v1": SLICE_UUID}
    assert [p.name for p in path.parent.iterdir()] == ["members.json"]  # no temporary file left behind
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="mcphive"):
        assert load_placements(path) == {}
    assert "ignoring the member placements" in caplog.text


def test_pool_up_records_each_gpu_members_device_so_its_figures_name_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    inventory = parse_nvidia_smi_list((FIXTURES / "nvidia-smi-L-mig.synthetic.txt").read_text())
    plans = plan_members(inventory, model="Qwen/Qwen3-8B", base_port=8000, log_dir=tmp_path)
    _record_placements(settings, plans)
    placements = load_placements(placements_path(settings))
    assert placements["http://127.0.0.1:8002/v1"] == SLICE_UUID and placements["http://127.0.0.1:8003/v1"] == "1"
    named = {s.label: s.member for s in assign_members(_mig(), placements)}
    assert named["MIG 1g.18gb 0/2"] == "http://127.0.0.1:8002/v1" and named["GPU 0"] is None


def test_placements_of_members_no_longer_configured_are_left_out(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, pool_members=["http://127.0.0.1:8000/v1"])
    save_placements(placements_path(settings), {"http://127.0.0.1:8000/v1": "0", "http://127.0.0.1:8001/v1": "1"})
    assert _placements(settings) == {"http://127.0.0.1:8000/v1": "0"}


def test_pool_status_prints_a_row_per_gpu_and_slice_with_its_member() -> None:
    gpus = assign_members(_mig(), {"http://127.0.0.1:8000/v1": SLICE_UUID})
    status = {"members": [], "spill": {"fallback": None}, "gpus": [vars(g) for g in gpus]}
    lines = format_status(status).splitlines()
    [slice_row] = [line for line in lines if line.startswith("MIG 1g.18gb 0/2")]
    assert "9.5/17.5" in slice_row and SLICE_UUID in slice_row and slice_row.endswith("http://127.0.0.1:8000/v1")
    [gpu1] = [line for line in lines if line.startswith("GPU 1")]
    assert "87%" in gpu1 and "58C" in gpu1 and "512W" in gpu1


GPU_CHECK = Path(__file__).parents[3] / "scripts" / "gpu-check"


def _gpu_check(*files: str, python: tuple[str, ...] = (sys.executable,)) -> subprocess.CompletedProcess[str]:
    captured = [str(FIXTURES / name) for name in files]
    return subprocess.run(
        [*python, str(GPU_CHECK), "--captured", *captured], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "files",
    [
        ("nvidia-smi-L.txt", "nvidia-smi-query.csv", "nvml.json"),
        ("nvidia-smi-L-mig.synthetic.txt", "nvidia-smi-query-mig.synthetic.csv", "nvml-mig.synthetic.json"),
    ],
    ids=["h200", "mig"],
)
def test_the_gpu_check_script_passes_on_the_captured_outputs(files: tuple[str, str, str]) -> None:
    done = _gpu_check(*files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL" not in done.stdout and done.stdout.rstrip().endswith("all checks passed")


def test_the_gpu_check_script_runs_without_mcphives_dependencies() -> None:
    """A lent GPU host has Python and not much else: -S hides site-packages, as on a bare machine."""
    done = _gpu_check("nvidia-smi-L.txt", "nvidia-smi-query.csv", "nvml.json", python=(sys.executable, "-S"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "loading only the modules checked here" in done.stdout


def test_the_gpu_check_script_fails_when_nvml_and_nvidia_smi_disagree() -> None:
    done = _gpu_check("nvidia-smi-L-mig.synthetic.txt", "nvidia-smi-query.csv", "nvml.json")
    assert done.returncode == 1
    assert "FAIL  NVML lists every MIG slice nvidia-smi does" in done.stdout


def test_the_gpu_check_script_says_there_is_nothing_to_check_without_nvidia_smi(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(GPU_CHECK), "--wheels", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 2 and "no nvidia-smi on this machine" in done.stdout
