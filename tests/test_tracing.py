"""One trace per task: routing, queue wait, each tool call and each model call (with tokens) as spans."""

from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mcphive import Hive, Settings
from mcphive.agents.spec import load_specs
from mcphive.inference.testing import ScriptedModel, final, tool_call

pytestmark = pytest.mark.anyio


async def test_a_task_is_one_trace_with_spans_for_each_stage(
    spans: InMemorySpanExporter, settings: Settings, sample_workspace: Path
) -> None:
    model = ScriptedModel([tool_call("read_file", path="README.md"), final("done")])
    async with Hive.open(settings.model_copy(update={"max_model_steps": 1}), model=model) as hive:
        await hive.run("summarize the errors in the logs", workspace=sample_workspace)
    finished = spans.get_finished_spans()
    names = [s.name for s in finished]
    assert names.count("mcphive.task") == 1 and "mcphive.route" in names and "mcphive.queue_wait" in names
    surveyed = len(load_specs()["ops"].survey)
    assert names.count("mcphive.tool") == surveyed + 1 and names.count("mcphive.model") == 2
    task = next(s for s in finished if s.name == "mcphive.task")
    assert {s.context.trace_id for s in finished} == {task.context.trace_id}
    model_span = next(s for s in finished if s.name == "mcphive.model")
    assert model_span.attributes is not None and model_span.attributes["gen_ai.usage.input_tokens"] == 10
    route = next(s for s in finished if s.name == "mcphive.route")
    assert route.attributes is not None and route.attributes["mcphive.agent"] == "ops"
