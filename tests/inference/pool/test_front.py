"""The OpenAI-compatible front, served by uvicorn over a pool of two real llama.cpp members."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
import uvicorn

from mcphive.inference.pool import PoolLauncher, PoolModel
from mcphive.inference.pool.front import build_front
from mcphive.inference.pool.gpu import GpuSampler, GpuStats, stats_from_nvml_dump
from mcphive.inference.pool.metrics import parse_prometheus
from mcphive.policy import PolicyConfig, RateLimit, TokenSpec

from .fault_proxy import FaultProxy
from .test_pool_failover import wait_for

pytestmark = pytest.mark.anyio

TOKEN = "s3cret-token"
CHAT = {"model": "smollm2", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}


def _policy(rate: RateLimit | None = None) -> PolicyConfig:
    tokens = [TokenSpec.model_validate({"name": "ci", "token": TOKEN})]
    return PolicyConfig(tokens=tokens, rate_limit=rate or RateLimit())


@asynccontextmanager
async def serve_front(
    pool: PoolModel, policy: PolicyConfig, gpus: GpuSampler | None = None
) -> AsyncIterator[httpx2.AsyncClient]:
    """The front over ``pool`` on a free loopback port, and a client pointed at it."""
    app = build_front(pool, policy, gpus=gpus)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", ws="none", lifespan="on")
    server = uvicorn.Server(config)
    # A socket listening before uvicorn starts: requests queue in its backlog until the front is up,
    # so nothing has to poll for readiness.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        port = sock.getsockname()[1]
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: server.serve(sockets=[sock]))
            async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                yield client
            server.should_exit = True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pool(launcher: PoolLauncher) -> PoolModel:
    return PoolModel(launcher.urls, "smollm2", policy="round_robin")


def _auth() -> dict[str, str]:
    return {"authorization": f"Bearer {TOKEN}"}


async def test_a_chat_completion_comes_back_in_openai_shape_and_is_counted(launcher: PoolLauncher) -> None:
    async with serve_front(_pool(launcher), _policy()) as client:
        response = await client.post("/v1/chat/completions", json=CHAT, headers=_auth())
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["object"] == "chat.completion"
        assert body["model"] == "smollm2"
        assert body["choices"][0]["message"]["role"] == "assistant"
        assert body["choices"][0]["message"]["content"].strip()
        assert body["usage"]["completion_tokens"] >= 1

        page = await client.get("/metrics", headers=_auth())
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in parse_prometheus(page.text)}
        served = sum(v for (name, _), v in samples.items() if name == "mcphive_pool_member_served_total")
        assert served == 1
        assert samples[("mcphive_front_requests_total", (("code", "200"), ("route", "chat")))] == 1
        closed = [
            v for (name, labels), v in samples.items() if name.endswith("breaker_state") and "closed" in labels[1]
        ]
        assert closed == [1, 1]


async def test_gpu_figures_join_the_metrics_page_only_when_the_front_has_a_gpu_sampler(
    launcher: PoolLauncher,
) -> None:
    async with serve_front(_pool(launcher), _policy()) as client:
        page = await client.get("/metrics", headers=_auth())
        assert "mcphive_pool_gpu_" not in page.text  # a CPU machine's front reads and prints no GPU section

    dump = json.loads((Path(__file__).parents[2] / "fixtures" / "gpu" / "nvml-mig.synthetic.json").read_text())

    def reader() -> list[GpuStats]:  # the captured NVML shape, parsed by the real code
        return stats_from_nvml_dump(dump)

    sampler = GpuSampler({launcher.urls[0]: "1"}, reader=reader)
    async with serve_front(_pool(launcher), _policy(), gpus=sampler) as client:
        page = await client.get("/metrics", headers=_auth())
    samples = parse_prometheus(page.text)
    util = {s.labels["member"]: s.value for s in samples if s.name == "mcphive_pool_gpu_utilization_ratio"}
    assert util == {launcher.urls[0]: 0.87}
    assert sum(s.name == "mcphive_pool_gpu_info" for s in samples) == 5  # two GPUs, three MIG slices
    assert any(s.name == "mcphive_pool_member_in_flight" for s in samples)  # the pool's own figures are still there


async def test_a_streamed_completion_arrives_as_server_sent_events_ending_in_done(launcher: PoolLauncher) -> None:
    async with serve_front(_pool(launcher), _policy()) as client:
        events: list[str] = []
        async with client.stream("POST", "/v1/chat/completions", json=CHAT | {"stream": True}, headers=_auth()) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    events.append(line.removeprefix("data: "))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text.strip()


async def test_a_client_that_leaves_mid_stream_ends_the_members_request(fault_proxy: FaultProxy) -> None:
    fault_proxy.inject("stall")  # the member never answers: only the client's leaving can end the request
    pool = PoolModel([fault_proxy.url], "smollm2", timeout=60)
    async with serve_front(pool, _policy()) as client:
        body = CHAT | {"stream": True}

        async def ask() -> None:
            async with client.stream("POST", "/v1/chat/completions", json=body, headers=_auth()) as response:
                await response.aread()

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await wait_for(lambda: fault_proxy.hits, 10)
            assert pool.members[0].in_flight == 1
            tg.cancel_scope.cancel()  # the client leaves before the first token (and before any headers)
        await wait_for(lambda: not pool.members[0].in_flight, 5)
        assert (await client.get("/health")).status_code == 200


async def test_a_stream_no_member_can_start_is_a_503_with_retry_after_not_a_200_holding_an_error() -> None:
    pool = PoolModel([f"http://127.0.0.1:{_free_port()}/v1"], "smollm2", timeout=5)  # nobody listens there
    async with serve_front(pool, _policy()) as client:
        response = await client.post("/v1/chat/completions", json=CHAT | {"stream": True}, headers=_auth())
        page = await client.get("/metrics", headers=_auth())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["type"] == "service_unavailable"
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in parse_prometheus(page.text)}
    assert samples[("mcphive_front_requests_total", (("code", "503"), ("route", "chat")))] == 1


async def test_unknown_paths_wrong_methods_and_oversized_bodies_get_clear_errors(launcher: PoolLauncher) -> None:
    policy = _policy().model_copy(update={"max_request_bytes": 4096})

    async def chunked_body() -> AsyncIterator[bytes]:  # no content-length: the limit applies as it arrives
        for _ in range(10):
            yield b"x" * 1024

    async with serve_front(_pool(launcher), policy) as client:
        missing = await client.get("/v1/embeddings", headers=_auth())
        wrong = await client.get("/v1/chat/completions", headers=_auth())
        declared = await client.post("/v1/chat/completions", content=b"x" * 5000, headers=_auth())
        streamed = await client.post("/v1/chat/completions", content=chunked_body(), headers=_auth())
        head = await client.head("/health")
    assert missing.status_code == 404 and "/v1/embeddings" in missing.json()["error"]["message"]
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert declared.status_code == 413 and "max_request_bytes" in declared.json()["error"]["message"]
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413
    assert head.status_code == 200 and head.content == b""


async def test_requests_without_a_valid_token_get_401_but_health_stays_open(launcher: PoolLauncher) -> None:
    async with serve_front(_pool(launcher), _policy()) as client:
        missing = await client.post("/v1/chat/completions", json=CHAT)
        wrong = await client.get("/v1/models", headers={"authorization": "Bearer nope"})
        health = await client.get("/health")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "bearer token" in missing.json()["error"]["message"]
    assert wrong.status_code == 401
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "members": 2}


async def test_a_key_over_its_rate_limit_gets_429_with_retry_after(launcher: PoolLauncher) -> None:
    async with serve_front(_pool(launcher), _policy(RateLimit(per_second=0.01, burst=2))) as client:
        codes = [(await client.get("/v1/models", headers=_auth())).status_code for _ in range(2)]
        refused = await client.get("/v1/models", headers=_auth())
    assert codes == [200, 200]
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["type"] == "rate_limit_exceeded"


async def test_models_lists_what_the_members_serve(launcher: PoolLauncher) -> None:
    async with serve_front(_pool(launcher), _policy()) as client:
        response = await client.get("/v1/models", headers=_auth())
    assert [m["id"] for m in response.json()["data"]] == ["smollm2"]


async def test_a_body_that_is_not_a_chat_request_gets_400_naming_the_problem(launcher: PoolLauncher) -> None:
    async with serve_front(_pool(launcher), _policy()) as client:
        response = await client.post("/v1/chat/completions", json={"model": "smollm2"}, headers=_auth())
    assert response.status_code == 400
    assert "messages" in response.json()["error"]["message"]


async def test_a_model_the_pool_does_not_serve_is_a_404_and_a_bad_field_one_line(launcher: PoolLauncher) -> None:
    # Left at "default", the pool takes any name its members serve, and the reply names that model.
    async with serve_front(PoolModel(launcher.urls, "default"), _policy()) as client:
        unknown = await client.post("/v1/chat/completions", json=CHAT | {"model": "gpt-9"}, headers=_auth())
        bad = await client.post("/v1/chat/completions", json=CHAT | {"max_tokens": -5}, headers=_auth())
        served = await client.post("/v1/chat/completions", json=CHAT | {"model": "smollm2"}, headers=_auth())
        unnamed = await client.post("/v1/chat/completions", json={"messages": CHAT["messages"]}, headers=_auth())
    assert unknown.status_code == 404
    assert unknown.json()["error"] == {
        "message": "the pool does not serve model 'gpt-9'; it serves: smollm2",
        "type": "invalid_request_error",
        "code": "model_not_found",
    }
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == (
        "not a chat-completions request: max_tokens: Input should be greater than or equal to 1"
    )
    assert (served.status_code, served.json()["model"]) == (200, "smollm2")
    assert (unnamed.status_code, unnamed.json()["model"]) == (200, "smollm2")


async def test_the_official_openai_client_gets_plain_and_streamed_replies(launcher: PoolLauncher) -> None:
    openai = pytest.importorskip("openai")
    async with serve_front(_pool(launcher), _policy()) as client:
        sdk = openai.AsyncOpenAI(base_url=f"{client.base_url}/v1", api_key=TOKEN, max_retries=0)
        try:
            reply = await sdk.chat.completions.create(model="smollm2", messages=CHAT["messages"], max_tokens=8)
            stream = await sdk.chat.completions.create(
                model="smollm2", messages=CHAT["messages"], max_tokens=8, stream=True
            )
            parts = [chunk.choices[0].delta.content or "" async for chunk in stream]
            with pytest.raises(openai.AuthenticationError):
                await sdk.with_options(api_key="wrong").models.list()
        finally:
            await sdk.close()
    assert reply.choices[0].message.content
    assert "".join(parts).strip()


def test_the_front_reads_the_hard_extension_field_and_nothing_else_changes() -> None:
    from mcphive.inference.pool.front import parse_chat_body

    messages = [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi"}]
    hard, stream = parse_chat_body({"messages": messages, "mcphive_hard": True, "stream": True})
    plain, _ = parse_chat_body({"messages": messages, "max_tokens": 7})
    assert hard.hard and stream and hard.messages[0].role == "system"
    assert not plain.hard and plain.max_tokens == 7
