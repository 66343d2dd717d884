"""Planted credentials never reach the database, the events, the logs, the spans or the gateway's answers.

The agent reads a file full of credentials (its model sees them, inside the process, as it must to
work on them), searches for one, and quotes them all in its answer. Afterwards none of them may be in
any file under the data folder (read as raw bytes), any event, any log record of mcphive's loggers,
any exported span, or what the gateway's ``task_status`` and ``task_result`` return; a
``[REDACTED:<type>]`` marker stands where each was.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from pathlib import Path

import pytest
from mcp import Client
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mcphive import Hive, Settings, TaskStatus
from mcphive.inference.base import ChatRequest, ChatResponse
from mcphive.inference.testing import FunctionModel, ScriptedModel, final, tool_call
from mcphive.mcp_servers.gateway import build_gateway
from mcphive.redaction import could_hold_secret, find_secrets, redact_secrets, redact_tree

pytestmark = pytest.mark.anyio

# Built at run time, so no scanner (or push protection) mistakes this file for a leak.
AWS_KEY_ID = "AKIA" + "Z3MHJQ7T4XWNV2KD"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYzq8pLk2mNa"
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
DB_PASSWORD = "Sup3r" + "S3cretPw9"
KEY_BODY = [base64.b64encode(hashlib.sha512(bytes([i])).digest())[:64].decode() for i in range(4)]
PRIVATE_KEY = "\n".join(["-----BEGIN RSA PRIVATE KEY-----", *KEY_BODY, "-----END RSA PRIVATE KEY-----"])
SECRETS = {
    "AWS key id": AWS_KEY_ID,
    "AWS secret": AWS_SECRET,
    "GitHub token": GITHUB_TOKEN,
    "password in a URL": DB_PASSWORD,
    **{f"private key line {i}": line for i, line in enumerate(KEY_BODY)},
}
PLANTED = "pricefeed/credentials.py"
CREDENTIALS = f'''"""Deployment credentials (planted for the test)."""

AWS_ACCESS_KEY_ID = "{AWS_KEY_ID}"
aws_secret_access_key = "{AWS_SECRET}"
GITHUB_TOKEN = "{GITHUB_TOKEN}"
DATABASE_URL = "postgres://admin:{DB_PASSWORD}@db.internal:5432/prices"
SIGNING_KEY = """{PRIVATE_KEY}"""
'''
# The answer quotes every credential bare: no plugin would recognise the AWS secret or the key lines here.
ANSWER = (
    f"Found hard-coded credentials: key id {AWS_KEY_ID} with secret {AWS_SECRET}, the token {GITHUB_TOKEN}, "
    f"the database password {DB_PASSWORD} and a private key:\n{PRIVATE_KEY}\nRotate them all."
)


def leaked(text: str | bytes) -> list[str]:
    """Which planted credentials appear in ``text``."""
    data = text.encode() if isinstance(text, str) else text
    return [name for name, value in SECRETS.items() if value.encode() in data]


@pytest.fixture
def workspace(sample_workspace: Path) -> Path:
    (sample_workspace / PLANTED).write_text(CREDENTIALS, encoding="utf-8")
    return sample_workspace


def span_text(finished: tuple[ReadableSpan, ...]) -> str:
    """Everything a span exporter would send of ``finished``, as one string."""
    parts = []
    for span in finished:
        parts.append(json.dumps(dict(span.attributes or {}), default=str))
        parts.append(str(span.status.description))
        parts.extend(json.dumps(dict(event.attributes or {}), default=str) for event in span.events)
    return "\n".join(parts)


def stored_bytes(data_dir: Path) -> dict[str, bytes]:
    """Every file the hive left under its data folder, raw."""
    return {str(path.relative_to(data_dir)): path.read_bytes() for path in data_dir.rglob("*") if path.is_file()}


@pytest.mark.parametrize("queue", ["memory", "sqlite"])
async def test_planted_credentials_are_nowhere_outside_the_run(
    settings: Settings, workspace: Path, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture, queue: str
) -> None:
    # The durable queue adds the queue's rows and the agent graph's checkpoints to what is stored.
    settings = settings.model_copy(update={"queue": queue, "queue_poll_s": 0.05})
    model = ScriptedModel(
        [
            tool_call("read_file", path=PLANTED, start_line=1, end_line=40),
            tool_call("search_text", pattern=AWS_KEY_ID),
            final(ANSWER),
        ]
    )
    caplog.set_level(logging.DEBUG, logger="mcphive")
    task_text = f"check whether the token {GITHUB_TOKEN} is hard-coded anywhere"
    async with Hive.open(settings.model_copy(update={"max_model_steps": 2}), model=model) as hive:
        async with Client(build_gateway(hive)) as client:
            ran = await client.call_tool("run_task", {"text": task_text, "workspace": str(workspace)})
            assert ran.structured_content is not None, ran
            task_id = ran.structured_content["task_id"]
            status = await client.call_tool("task_status", {"task_id": task_id})
            result_call = await client.call_tool("task_result", {"task_id": task_id})
        result = await hive.wait(task_id)
        events = hive.events_so_far(task_id)
        logging.getLogger("mcphive.agents").warning("the agent quoted %s", GITHUB_TOKEN)

    # The run itself happened: the model read the real file and its secrets, and the search found the key.
    assert result.status is TaskStatus.SUCCEEDED, result.error
    read, search = result.tool_calls[-2:]
    assert read.tool == "read_file" and "AWS_ACCESS_KEY_ID = " in read.result
    assert search.tool == "search_text" and PLANTED in search.result
    assert any(AWS_KEY_ID in m.content for r in model.requests for m in r.messages)  # the model did see it

    # Nothing raw is left anywhere, and markers stand in its place.
    files = stored_bytes(settings.data_dir)
    assert any(name.endswith(".db") for name in files)
    assert {name: leaked(raw) for name, raw in files.items() if leaked(raw)} == {}
    database = b"".join(raw for name, raw in files.items() if "mcphive.db" in name)
    for marker in ("AWS Access Key", "GitHub Token", "Basic Auth Credentials", "Private Key"):
        assert f"[REDACTED:{marker}]".encode() in database
    events_json = json.dumps([e.model_dump(mode="json") for e in events])
    assert leaked(events_json) == [] and "[REDACTED:AWS Access Key]" in events_json
    assert leaked(caplog.text) == [] and leaked("\n".join(r.getMessage() for r in caplog.records)) == []
    assert "the agent quoted [REDACTED:GitHub Token]" in caplog.text
    assert leaked(span_text(spans.get_finished_spans())) == []
    for answer in (status, result_call):
        shown = json.dumps(answer.structured_content)
        assert leaked(shown) == [] and "[REDACTED:" in shown
    assert leaked(result.model_dump_json()) == []
    assert "[REDACTED:GitHub Token]" in result.text
    assert "[REDACTED:Private Key]" in result.answer and "Rotate them all." in result.answer


async def test_a_failure_that_quotes_a_secret_is_redacted_in_the_error_log_and_span(
    settings: Settings, workspace: Path, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    def model(request: ChatRequest) -> ChatResponse | str:
        if request.tool_choice == "none":
            raise RuntimeError(f"upstream rejected the key {AWS_KEY_ID} and token {GITHUB_TOKEN}")
        return tool_call("finish")

    caplog.set_level(logging.DEBUG, logger="mcphive")
    async with Hive.open(settings, model=FunctionModel(model)) as hive:
        result = await hive.run("lint the code", workspace=workspace, agent="code")
        events = hive.events_so_far(result.task_id)

    assert result.status is TaskStatus.FAILED and result.error is not None
    assert "RuntimeError" in result.error and leaked(result.error) == []
    assert "[REDACTED:AWS Access Key]" in result.error
    assert leaked(caplog.text) == [] and "task " in caplog.text and "crashed" in caplog.text
    assert "[REDACTED:GitHub Token]" in caplog.text  # the traceback is kept, redacted
    finished = spans.get_finished_spans()
    recorded = [e for s in finished for e in s.events if e.name == "exception"]
    assert recorded and leaked(span_text(finished)) == []
    assert leaked(json.dumps([e.model_dump(mode="json") for e in events])) == []
    files = stored_bytes(settings.data_dir)
    assert {name: leaked(raw) for name, raw in files.items() if leaked(raw)} == {}


def test_the_pre_filter_never_changes_what_is_found(sample_workspace: Path) -> None:
    texts = [
        p.read_text(encoding="utf-8", errors="replace") for p in sorted(sample_workspace.rglob("*")) if p.is_file()
    ]
    texts.append(CREDENTIALS)
    texts.append(ANSWER)

    with_filter = find_secrets(texts)
    without = find_secrets(texts, prefilter=False)

    assert with_filter == without
    assert {f.kind for f in with_filter} >= {"AWS Access Key", "GitHub Token", "Basic Auth Credentials", "Private Key"}
    assert not could_hold_secret("def main() -> None:  # prints the totals")
    assert could_hold_secret(f"key = {GITHUB_TOKEN}")


def test_a_credential_found_in_one_string_is_replaced_in_all_and_key_blocks_go_whole() -> None:
    file_text = f'aws_secret_access_key = "{AWS_SECRET}"'
    tool_result = json.dumps({"text": CREDENTIALS})  # what an MCP tool returns: quotes and newlines escaped
    answer = f"the secret is {AWS_SECRET}, keep it safe"

    [clean_file, clean_result, clean_answer], kinds = redact_tree([file_text, tool_result, answer])

    assert leaked(clean_file + clean_result + clean_answer) == []
    assert clean_answer.startswith("the secret is [REDACTED:")
    assert "keep it safe" in clean_answer
    assert json.loads(clean_result)["text"].count("[REDACTED:Private Key]") == 1
    assert {"AWS Access Key", "Private Key"} <= set(kinds)
    assert redact_secrets("nothing to see here\nat all") == ("nothing to see here\nat all", [])


def test_texts_scanned_clean_are_skipped_by_digest_and_a_text_with_a_secret_never_is(
    sample_workspace: Path,
) -> None:
    clean = (sample_workspace / "pricefeed" / "pricing.py").read_text(encoding="utf-8")
    first = find_secrets([clean, CREDENTIALS])
    again = find_secrets([CREDENTIALS, clean])  # the clean text is remembered; the credentials are scanned again
    assert first and [(f.kind, f.value) for f in first] == [(f.kind, f.value) for f in again]
    assert {f.text for f in again} == {0}
    # A clean text quoting a credential later is a new text: it is scanned, not skipped.
    assert find_secrets([clean + f"\ntoken = '{GITHUB_TOKEN}'\n"])
