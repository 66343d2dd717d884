"""The Prometheus text-format parser and the vLLM load figures, on a page captured from a real vLLM."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mcphive.inference.pool import MetricsParseError, load_metrics, parse_prometheus

FIXTURE = Path(__file__).parents[2] / "fixtures" / "vllm_metrics.txt"


def test_the_vllm_page_yields_queue_cache_and_prefix_figures() -> None:
    metrics = load_metrics(FIXTURE.read_text())
    assert metrics is not None
    assert metrics.running == 4.0
    assert metrics.waiting == 0.0
    assert metrics.kv_cache_usage == pytest.approx(0.011019283746556474)
    assert metrics.prefix_hit_rate == pytest.approx(384 / 1240)


def test_samples_keep_their_labels_and_special_values() -> None:
    samples = parse_prometheus(FIXTURE.read_text())
    bucket = next(s for s in samples if s.labels.get("le") == "+Inf" and s.name.startswith("vllm:time_to_first"))
    assert bucket.name == "vllm:time_to_first_token_seconds_bucket"
    assert bucket.labels == {"engine": "0", "le": "+Inf", "model_name": "smollm2"}
    assert bucket.value == 15.0
    assert math.isinf(parse_prometheus('x{a="b"} +Inf 1700000000')[0].value)


def test_escaped_quotes_in_label_values_are_unescaped() -> None:
    [sample] = parse_prometheus('m{path="say \\"hi\\"",b="c\\\\d"} 1')
    assert sample.labels == {"path": 'say "hi"', "b": "c\\d"}


def test_the_older_gpu_cache_name_is_used_when_the_new_one_is_absent() -> None:
    page = "vllm:num_requests_running 1\nvllm:num_requests_waiting 0\nvllm:gpu_cache_usage_perc 0.9\n"
    metrics = load_metrics(page)
    assert metrics is not None
    assert metrics.kv_cache_usage == pytest.approx(0.9)
    assert metrics.prefix_hit_rate is None


def test_a_page_without_vllm_figures_means_no_metrics() -> None:
    assert load_metrics("# HELP process_cpu_seconds_total CPU\nprocess_cpu_seconds_total 12.5\n") is None


def test_samples_of_several_engines_are_summed() -> None:
    page = 'vllm:num_requests_running{engine="0"} 2\nvllm:num_requests_running{engine="1"} 5\n'
    metrics = load_metrics(page)
    assert metrics is not None
    assert metrics.running == 7.0


@pytest.mark.parametrize(
    "page",
    [
        "<html>Not Found</html>",
        "vllm:num_requests_running not-a-number",
        "vllm:num_requests_running{engine=0} 1",
        "vllm:num_requests_running",
    ],
)
def test_garbage_is_an_error_not_an_idle_member(page: str) -> None:
    with pytest.raises(MetricsParseError):
        parse_prometheus(page)
