"""The gateway's OpenAPI document: the contract's REST surface, bodies and answers included.

The gateway passes bodies to dm untouched (dm validates them), so FastAPI cannot infer
them from the handlers; each route declares them here, from the shared wire models and
the contract's shapes. Clients read the document, and tests/security checks every answer
against it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from svckit.wire import CallCreate, CallCreated, TurnRequest, TurnResult

REF = "#/components/schemas/{model}"
ERROR_CODES = {
    400: "malformed request",
    401: "missing or invalid API key",
    404: "unknown flow or call (a call of another key included)",
    408: "the body did not arrive in time",
    409: "conflict: the call exists, or a turn is in progress",
    410: "the call has ended",
    413: "body over 64 KiB",
    422: "invalid field",
    429: "rate limited (with Retry-After)",
    503: "not ready, dm unreachable, or overloaded (with Retry-After)",
}

# The contract's shapes that are not wire models. Unnamed fields are allowed: the
# contract lists what is there at least.
SHAPES: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "additionalProperties": False,
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "FlowList": {
        "type": "object",
        "required": ["flows"],
        "properties": {
            "flows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "kind", "languages", "start_node"],
                    "properties": {
                        "id": {"type": "string"},
                        "kind": {"enum": ["booking", "interview"]},
                        "languages": {"type": "array", "items": {"type": "string"}},
                        "start_node": {"type": "string"},
                    },
                },
            }
        },
    },
    "FlowGraph": {
        "type": "object",
        "required": ["id", "kind", "start_node", "nodes", "slots"],
        "properties": {
            "id": {"type": "string"},
            "kind": {"enum": ["booking", "interview"]},
            "start_node": {"type": "string"},
            "nodes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "transitions", "final", "slots"],
                    "properties": {
                        "id": {"type": "string"},
                        "transitions": {"type": "array", "items": {"type": "string"}},
                        "final": {"type": "boolean"},
                        "slots": {"type": "array"},
                    },
                },
            },
            "slots": {"type": "object"},
        },
    },
    "CallState": {
        "type": "object",
        "required": ["call_id", "flow", "lang", "node", "slots", "turns", "ended", "state_version"],
        "properties": {
            "call_id": {"type": "string"},
            "flow": {"type": "string"},
            "lang": {"type": "string"},
            "node": {"type": "string"},
            "slots": {"type": "object"},
            "turns": {"type": "integer"},
            "ended": {"type": "boolean"},
            "state_version": {"type": "integer"},
        },
    },
    "CallSummary": {
        "type": "object",
        "required": ["call_id", "slots", "ended"],
        "properties": {
            "call_id": {"type": "string"},
            "slots": {"type": "object"},
            "ended": {"type": "boolean"},
            "outcome": {"enum": ["completed", "transfer", None]},
            "transfer_reason": {"type": ["string", "null"]},
        },
    },
    "Readiness": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"enum": ["ready", "not_ready"]},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def json_body(name: str) -> dict[str, Any]:
    """`openapi_extra` declaring a required JSON request body."""
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": ref(name)}}}
    }


def answers(ok: int, ok_schema: str, *errors: int, stream: bool = False) -> dict[int | str, Any]:
    """`responses=` for a route: its success shape and the contract's errors it can give."""
    content: dict[str, Any] = {"application/json": {"schema": ref(ok_schema)}}
    if stream:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    declared: dict[int | str, Any] = {ok: {"description": "success", "content": content}}
    for status in errors:
        declared[status] = {
            "description": ERROR_CODES[status],
            "content": {"application/json": {"schema": ref("Error")}},
        }
    return declared


def install(app: FastAPI) -> None:
    """Build the document once, with the wire models and shapes as components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            _, defs = models_json_schema(
                [
                    (CallCreate, "validation"),
                    (TurnRequest, "validation"),
                    (CallCreated, "serialization"),
                    (TurnResult, "serialization"),
                ],
                ref_template=REF,
            )
            schemas.update(defs["$defs"])
            schemas.update(SHAPES)
            # FastAPI adds its own {"detail": …} shapes for routes it validates; the
            # gateway answers every error in the contract's shape instead.
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
