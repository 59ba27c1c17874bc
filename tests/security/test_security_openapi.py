"""Generated requests against each service's OpenAPI document (schemathesis): no 5xx,
and every answer matches the schema the document gives for its status.

Each service runs as a process, keyed, in front of Redis and a scripted LLM. For every
operation schemathesis generates valid requests and, where the document allows it,
invalid ones (wrong types, missing fields, values out of range, extra fields).
`SECURITY_CASES` sets the requests per service (default below; SECURITY.md shows a
bigger campaign).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance
from security_harness import Keys, Stack, audited_stack

from llm_local.api_models import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    PrefillRequest,
)

CASES = int(os.environ.get("SECURITY_CASES", "300"))
KEYS = Keys(
    gateway="gw-" + secrets.token_hex(8),
    dm="dm-" + secrets.token_hex(8),
    llm="llm-" + secrets.token_hex(8),
    upstream="up-" + secrets.token_hex(8),
)
CHECKS = [not_a_server_error, response_schema_conformance]
# llm-local's handlers parse their bodies themselves (JSON whatever the Content-Type),
# so FastAPI leaves the bodies out of its document; they are its own request models.
LLM_LOCAL_BODIES: dict[str, type[BaseModel]] = {
    "/v1/chat/completions": ChatCompletionRequest,
    "/v1/completions": CompletionRequest,
    "/v1/embeddings": EmbeddingRequest,
    "/v1/prefill": PrefillRequest,
}


def with_bodies(document: dict[str, Any], bodies: dict[str, type[BaseModel]]) -> dict[str, Any]:
    """The document with a JSON request body declared for each of `bodies`' paths."""
    ref = "#/components/schemas/{model}"
    _, defs = models_json_schema([(m, "validation") for m in bodies.values()], ref_template=ref)
    document.setdefault("components", {}).setdefault("schemas", {}).update(defs["$defs"])
    for path, model in bodies.items():
        if path in document["paths"]:
            schema = {"$ref": ref.format(model=model.__name__)}
            document["paths"][path]["post"]["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema}},
            }
    return document


# Random flow names and call ids rarely name a real one; most valid requests to the
# gateway go to real flows and calls instead, so turns run through dm with random words.
# Only DELETE ends "fuzz-end"; the others stay open for turns.
def owner_label(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


REAL_CALLS = {
    "fuzz-ru": ("booking_mri", "ru"),
    "fuzz-en": ("interview_python_dev", "en"),
    "fuzz-end": ("booking_mri", "en"),
}


def open_real_calls(base_url: str, headers: dict[str, str]) -> None:
    """The calls valid cases are pointed at (made through the gateway, or directly at dm as
    the same owner, in which case they may exist already)."""
    for call_id, (flow, lang) in REAL_CALLS.items():
        body = {"call_id": call_id, "flow": flow, "lang": lang}
        response = httpx.post(f"{base_url}/v1/calls", json=body, headers=headers)
        assert response.status_code in (201, 409), response.text


def to_real_call(case: Case, call_id: str | None) -> Case:
    if call_id is None:
        return case
    if case.path_parameters and "call_id" in case.path_parameters:
        case.path_parameters["call_id"] = "fuzz-end" if case.method == "DELETE" else call_id
    elif case.path_parameters and "flow_id" in case.path_parameters:
        case.path_parameters["flow_id"] = REAL_CALLS[call_id][0]
    elif case.operation.path == "/v1/calls" and isinstance(case.body, dict):
        case.body["flow"], case.body["lang"] = REAL_CALLS[call_id]
        case.body.pop("call_id", None)
    return case


@dataclass(frozen=True)
class Target:
    name: str
    url: Callable[[Stack], str]
    headers: dict[str, str]
    complete: Callable[[dict[str, Any]], dict[str, Any]] = lambda document: document
    setup: Callable[[str, dict[str, str]], None] = lambda _url, _headers: None
    # Applied to valid cases with one of `choices` (None: leave the case as it is).
    adjust: Callable[[Case, Any], Case] = lambda case, _choice: case
    choices: tuple[Any, ...] = (None,)


TARGETS = [
    Target(
        "gateway",
        lambda s: s.gateway_url,
        {"Authorization": f"Bearer {KEYS.gateway}"},
        setup=open_real_calls,
        adjust=to_real_call,
        choices=(None, *REAL_CALLS),
    ),
    Target(
        "llm-local",
        lambda s: s.llm_url,
        {"Authorization": f"Bearer {KEYS.llm}"},
        lambda document: with_bodies(document, LLM_LOCAL_BODIES),
    ),
    Target(
        "dm",
        lambda s: s.dm_url,
        # As the gateway calls it: dm's key, and the owner label of the gateway's key.
        {"Authorization": f"Bearer {KEYS.dm}", "X-Call-Owner": owner_label(KEYS.gateway)},
        setup=open_real_calls,
        adjust=to_real_call,
        choices=(None, *REAL_CALLS),
    ),
]


@dataclass
class Run:
    cases: int = 0
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_server: Any) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("openapi")
    with audited_stack(redis_server.url, log_dir, KEYS) as running:
        yield running


def fuzz(target: Target, base_url: str, total: int) -> Run:
    """At least `total` generated requests, spread over the operations that take input."""
    document = target.complete(httpx.get(f"{base_url}/openapi.json", headers=target.headers).json())
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    with_input = sum(1 for op in operations if takes_input(op.definition.raw))
    target.setup(base_url, target.headers)
    run = Run()
    while run.cases < total:  # some operations allow fewer cases than asked (no invalid ones)
        per_mode = max(1, -(-(total - run.cases) // (2 * with_input)))
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                strategy = operation.as_strategy(generation_mode=mode)
                if mode is GenerationMode.POSITIVE:
                    choices = st.sampled_from(target.choices)
                    strategy = st.tuples(strategy, choices).map(lambda t: target.adjust(*t))
                with contextlib.suppress(Unsatisfiable):  # nothing invalid can be made
                    send_cases(strategy, per_mode, base_url, target.headers, run)
    return run


def send_cases(
    cases: st.SearchStrategy[Case], count: int, base_url: str, headers: dict[str, str], run: Run
) -> None:
    @given(case=cases)
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Case) -> None:
        run.cases += 1
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        run.statuses[(case.operation.label, response.status_code)] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, FailureGroup) as failure:
            run.failures.append(f"{case.operation.label}: {failure}"[:2000])

    send()


def takes_input(operation: dict[str, Any]) -> bool:
    return bool(operation.get("parameters") or operation.get("requestBody"))


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_generated_requests_get_no_5xx_and_answers_match_the_schema(
    stack: Stack, target: Target
) -> None:
    run = fuzz(target, target.url(stack), CASES)
    statuses = Counter(status for (_operation, status) in run.statuses.elements())
    print(f"{target.name}: {run.cases} requests, statuses {dict(sorted(statuses.items()))}")
    assert run.failures == []
    assert not [key for key in run.statuses if key[1] >= 500]
    assert run.cases >= CASES
