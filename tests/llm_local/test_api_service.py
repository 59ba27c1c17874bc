"""The service around generation, against the deterministic backend: readiness, auth,
/config, /metrics, deadlines, client disconnects, overload, and errors in OpenAI's shape."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from llm_local.app import create_app
from llm_local.backends.base import DeadlineExceeded, NotReady, Overloaded, UpstreamError
from support.llm_upstreams import (
    BackendScript,
    ScriptedBackend,
    local_settings,
    metric_value,
    serve_llm_local,
)
from support.servers import ServerThread

BODY = {"model": "any", "messages": [{"role": "user", "content": "Hello"}]}
LONG_REPLY = "word " * 400
KEY = "sk-local-test-key"


@pytest.fixture(scope="module")
def backend() -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture(scope="module")
def base_url(backend: ScriptedBackend) -> Iterator[str]:
    settings = local_settings(llm_upstream_api_key="sk-upstream-secret")
    with serve_llm_local(settings, backend) as url:
        yield url


@pytest.fixture
def client(base_url: str, backend: ScriptedBackend) -> Iterator[httpx.Client]:
    backend.script = BackendScript()
    backend.closed_early.clear()
    backend.stream_closed.clear()
    with httpx.Client(base_url=base_url, timeout=10) as client:
        yield client


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_health_answers_503_until_the_model_is_loaded() -> None:
    backend = ScriptedBackend(loaded=False)
    with ServerThread(create_app(local_settings(), backend)) as server:
        loading = httpx.get(f"{server.url}/health")
        refused = httpx.post(f"{server.url}/v1/chat/completions", json=BODY)
        backend.loaded.set()
        deadline = time.monotonic() + 5
        while httpx.get(f"{server.url}/health").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        ready = httpx.get(f"{server.url}/health")

    assert error_of(loading, 503)["code"] == "not_ready"
    assert loading.headers["retry-after"] == "5"
    assert error_of(refused, 503)["code"] == "not_ready"
    assert ready.json() == {"status": "ok", "backend": "scripted", "model": "scripted-model"}


def test_health_reports_a_failed_start() -> None:
    class BrokenBackend(ScriptedBackend):
        async def start(self) -> None:
            raise FileNotFoundError("no such model file")

    with ServerThread(create_app(local_settings(), BrokenBackend())) as server:
        deadline = time.monotonic() + 5
        while (response := httpx.get(f"{server.url}/health")).json()["error"]["code"] != (
            "start_failed"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.01)

    assert "no such model file" in error_of(response, 503)["message"]


def test_deep_health_runs_a_one_token_generation(
    client: httpx.Client, backend: ScriptedBackend
) -> None:
    body = client.get("/health/deep").json()

    assert body["status"] == "ok"
    assert body["completion_tokens"] == 1
    assert body["latency_ms"] >= 0
    assert backend.requests[-1].params.max_tokens == 1


def test_deep_health_fails_with_503_when_generation_fails(
    client: httpx.Client, backend: ScriptedBackend
) -> None:
    backend.script.error = UpstreamError("engine crashed")

    error = error_of(client.get("/health/deep"), 503)

    assert error["code"] == "health_check_failed"
    assert "engine crashed" in error["message"]


def test_models_list_the_served_model(client: httpx.Client) -> None:
    body = client.get("/v1/models").json()

    assert body["object"] == "list"
    assert [card["id"] for card in body["data"]] == ["scripted-model"]
    assert client.get("/v1/models/scripted-model").json()["id"] == "scripted-model"
    assert error_of(client.get("/v1/models/gpt-4"), 404)["code"] == "model_not_found"


def test_config_describes_the_service_without_secrets(client: httpx.Client) -> None:
    response = client.get("/config")

    body = response.json()
    assert body["backend"] == "scripted"
    assert body["model"] == "scripted-model"
    assert body["auth_enabled"] is False
    assert body["limits"]["max_tokens"] == 1024
    assert body["engine"] == {"scripted": True}
    assert "sk-upstream-secret" not in response.text


def test_metrics_count_requests_tokens_and_time_to_first_token(
    client: httpx.Client, base_url: str
) -> None:
    before = metric_value(
        base_url, "llm_requests_total", endpoint="/v1/chat/completions", status="200"
    )
    client.post("/v1/chat/completions", json={**BODY, "max_tokens": 3})
    client.post("/v1/chat/completions", json={**BODY, "stream": True, "max_tokens": 3})

    assert (
        metric_value(base_url, "llm_requests_total", endpoint="/v1/chat/completions", status="200")
        == before + 2
    )
    assert metric_value(base_url, "llm_time_to_first_token_seconds_count", endpoint="chat") >= 2
    assert metric_value(base_url, "llm_completion_tokens_total", endpoint="chat") >= 6
    assert (
        metric_value(base_url, "llm_generations_total", endpoint="chat", finish_reason="length")
        >= 2
    )
    assert metric_value(base_url, "llm_decode_tokens_per_second_count") >= 2
    assert metric_value(base_url, "llm_backend_stat", name="scripted_streams") == 1.0


def test_metrics_show_the_backend_queue(
    client: httpx.Client, backend: ScriptedBackend, base_url: str
) -> None:
    backend.queue_depth = 3
    try:
        assert metric_value(base_url, "llm_queue_depth") == 3
        assert metric_value(base_url, "llm_active_requests") == 0
    finally:
        backend.queue_depth = 0


def test_deadline_header_stops_generation_with_length(
    client: httpx.Client, backend: ScriptedBackend, base_url: str
) -> None:
    before = metric_value(base_url, "llm_cancellations_total", reason="deadline")
    backend.script = BackendScript(reply=LONG_REPLY, token_delay_s=0.02)

    started = time.monotonic()
    response = client.post(
        "/v1/chat/completions", json=BODY, headers={"X-Request-Timeout-Ms": "200"}
    )

    assert time.monotonic() - started < 1.0
    body = response.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["stop_reason"] == "deadline"
    assert 0 < body["usage"]["completion_tokens"] < 50
    assert metric_value(base_url, "llm_cancellations_total", reason="deadline") == before + 1
    assert backend.requests[-1].deadline is not None


def test_deadline_in_a_stream_ends_it_with_stop_reason(
    client: httpx.Client, backend: ScriptedBackend
) -> None:
    backend.script = BackendScript(reply=LONG_REPLY, token_delay_s=0.02)

    response = client.post(
        "/v1/chat/completions",
        json={**BODY, "stream": True},
        headers={"X-Request-Timeout-Ms": "150"},
    )

    events = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    finish = orjson.loads(events[-2])["choices"][0]
    assert (finish["finish_reason"], finish["stop_reason"]) == ("length", "deadline")


def test_a_backend_that_misses_the_deadline_is_stopped_after_a_grace(
    client: httpx.Client, backend: ScriptedBackend
) -> None:
    backend.script = BackendScript(reply=LONG_REPLY, token_delay_s=0.4, honour_deadline=False)

    started = time.monotonic()
    response = client.post(
        "/v1/chat/completions", json=BODY, headers={"X-Request-Timeout-Ms": "500"}
    )

    assert time.monotonic() - started < 2.5
    choice = response.json()["choices"][0]
    assert (choice["finish_reason"], choice["stop_reason"]) == ("length", "deadline")
    assert backend.stream_closed.wait(2)


def test_no_first_token_before_the_deadline_is_503(
    client: httpx.Client, backend: ScriptedBackend
) -> None:
    backend.script = BackendScript(token_delay_s=5, honour_deadline=False)

    response = client.post(
        "/v1/chat/completions", json=BODY, headers={"X-Request-Timeout-Ms": "100"}
    )

    assert error_of(response, 503)["code"] == "deadline_exceeded"
    assert response.headers["retry-after"] == "5"


def test_client_disconnect_mid_stream_stops_generation(
    client: httpx.Client, backend: ScriptedBackend, base_url: str
) -> None:
    before = metric_value(base_url, "llm_cancellations_total", reason="disconnect")
    backend.script = BackendScript(reply=LONG_REPLY, token_delay_s=0.02)

    with client.stream("POST", "/v1/chat/completions", json={**BODY, "stream": True}) as response:
        lines = response.iter_lines()
        received = [line for line, _ in zip(lines, range(6), strict=False) if line]

    assert len(received) == 3
    assert backend.stream_closed.wait(5)
    assert backend.closed_early[0] < 10  # of 500 tokens: stopped within about one token
    deadline = time.monotonic() + 5
    while metric_value(base_url, "llm_cancellations_total", reason="disconnect") != before + 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert metric_value(base_url, "llm_active_requests") == 0


def test_client_disconnect_while_waiting_for_a_whole_answer_stops_generation(
    base_url: str, backend: ScriptedBackend
) -> None:
    backend.script = BackendScript(reply=LONG_REPLY, token_delay_s=0.02)
    backend.stream_closed.clear()
    backend.closed_early.clear()

    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{base_url}/v1/chat/completions", json=BODY, timeout=0.2)

    assert backend.stream_closed.wait(5)
    assert backend.closed_early[0] < 30


@pytest.mark.parametrize(
    ("error", "status", "code", "retry_after"),
    [
        (Overloaded("the queue is full", retry_after=2.0), 429, "overloaded", "2"),
        (NotReady("the model is loading"), 503, "not_ready", "5"),
        (
            DeadlineExceeded("queued past the deadline", retry_after=0.2),
            503,
            "deadline_exceeded",
            "1",
        ),
        (UpstreamError("engine said no"), 502, "upstream_error", None),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_backend_errors_keep_their_status_and_retry_after(
    client: httpx.Client,
    backend: ScriptedBackend,
    error: Exception,
    status: int,
    code: str,
    retry_after: str | None,
    stream: bool,
) -> None:
    backend.script = BackendScript(error=error)  # type: ignore[arg-type]

    response = client.post("/v1/chat/completions", json={**BODY, "stream": stream})

    assert error_of(response, status)["code"] == code
    assert response.headers.get("retry-after") == retry_after


def test_a_failure_mid_stream_becomes_an_error_event(
    client: httpx.Client, backend: ScriptedBackend
) -> None:
    backend.script = BackendScript(reply="abcdefgh", token_chars=4)
    original = backend.stream

    async def failing(request: Any) -> Any:
        async for event in original(request):
            yield event
            raise UpstreamError("the engine died")

    backend.stream = failing  # type: ignore[method-assign]
    try:
        response = client.post("/v1/chat/completions", json={**BODY, "stream": True})
    finally:
        del backend.stream

    events = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]
    assert response.status_code == 200
    assert events[-1] == "[DONE]"
    assert orjson.loads(events[-2])["error"]["code"] == "upstream_error"


def test_unexpected_exception_is_a_500_in_openai_shape(
    client: httpx.Client, backend: ScriptedBackend
) -> None:
    backend.script = BackendScript(error=RuntimeError("bug"))  # type: ignore[arg-type]

    error = error_of(client.post("/v1/chat/completions", json=BODY), 500)

    assert error == {
        "message": "internal error",
        "type": "server_error",
        "param": None,
        "code": "internal_error",
    }


def test_unknown_route_and_wrong_method_answer_in_openai_shape(client: httpx.Client) -> None:
    assert error_of(client.get("/v1/nothing"), 404)["code"] == "not_found"
    wrong_method = client.get("/v1/chat/completions")
    assert error_of(wrong_method, 405)["code"] == "method_not_allowed"
    assert wrong_method.headers["allow"] == "POST"


def test_oversized_body_is_413(client: httpx.Client) -> None:
    huge = {"messages": [{"role": "user", "content": "x" * 1_100_000}]}

    error = error_of(client.post("/v1/chat/completions", json=huge), 413)

    assert error["code"] == "too_large"
    assert error["type"] == "invalid_request_error"


@pytest.fixture(scope="module")
def keyed_url() -> Iterator[str]:
    with serve_llm_local(local_settings(llm_api_key=KEY), ScriptedBackend()) as url:
        yield url


@pytest.mark.parametrize("path", ["/v1/models", "/config", "/health/deep"])
def test_missing_key_is_401(keyed_url: str, path: str) -> None:
    response = httpx.get(f"{keyed_url}{path}")

    error = error_of(response, 401)
    assert error["code"] == "missing_api_key"
    assert error["type"] == "authentication_error"
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("header", [f"Bearer {KEY}x", "Bearer wrong", f"Basic {KEY}"])
def test_wrong_key_is_401(keyed_url: str, header: str) -> None:
    response = httpx.post(
        f"{keyed_url}/v1/chat/completions", json=BODY, headers={"Authorization": header}
    )

    assert error_of(response, 401)["code"] in ("invalid_api_key", "missing_api_key")


def test_right_key_is_served_and_probes_stay_open(keyed_url: str) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}

    assert (
        httpx.post(f"{keyed_url}/v1/chat/completions", json=BODY, headers=auth).status_code == 200
    )
    assert httpx.get(f"{keyed_url}/config", headers=auth).json()["auth_enabled"] is True
    assert KEY not in httpx.get(f"{keyed_url}/config", headers=auth).text
    assert httpx.get(f"{keyed_url}/health").status_code == 200
    assert httpx.get(f"{keyed_url}/metrics").status_code == 200
