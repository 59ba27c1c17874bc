"""`Authorization: Bearer <LLM_API_KEY>` on the routes that need it, when a key is set."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from llm_local.settings import LlmSettings
from svckit.errors import ApiError

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def get_settings(request: Request) -> LlmSettings:
    settings: LlmSettings = request.app.state.settings
    return settings


SettingsDep = Annotated[LlmSettings, Depends(get_settings)]


async def require_api_key(request: Request, settings: SettingsDep) -> None:
    """Pass when no key is configured or the request carries it; else 401."""
    expected = settings.llm_api_key
    if not expected:
        return
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ApiError(
            401,
            "missing_api_key",
            "this server requires an API key: send Authorization: Bearer <key>",
            type_="authentication_error",
            headers=_CHALLENGE,
        )
    if not hmac.compare_digest(presented.strip().encode(), expected.encode()):
        raise ApiError(
            401,
            "invalid_api_key",
            "the API key is not valid",
            type_="authentication_error",
            headers=_CHALLENGE,
        )
