"""The gateway's client for dm's HTTP API (see dm.api for the internal additions).

A turn is one `POST /v1/calls/{id}/turns` with `Accept: text/event-stream`; dm
answers with SSE events whose `data` is already the WebSocket message. A barge-in
is `POST /v1/calls/{id}/turns/{turn_id}/interrupt` with what the caller heard.
Plain requests run under the client's deadline, streams under their caller's;
dm's errors keep their status, code and message. Every request carries
`Authorization: Bearer <DM_API_KEY>` when that is set, and every call route the
caller's owner label (`X-Call-Owner`, see gateway.auth) when auth is on. Partial
ASR text goes to `POST /v1/calls/{id}/partial` so dm can prepare the turn.

aiohttp carries the hop, as it carries dm's own hop to llm-local: per streamed
turn it costs ~0.2-0.35 ms of CPU here against 1.2-4.2 ms for httpx, whose
pool also slows down with many connections (bench/gateway/dm_hop.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from gateway.auth import OWNER_HEADER

SSE = "text/event-stream"
JSON = "application/json"


class DmError(Exception):
    """dm refused a request (its error code kept) or could not be reached."""

    def __init__(self, status: int, code: str, message: str, retry_after: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


def unreachable(exc: BaseException) -> DmError:
    kind = "timed out" if isinstance(exc, TimeoutError) else "unreachable"
    return DmError(503, "dm_unavailable", f"dialog manager {kind}", "1")


@dataclass(frozen=True, slots=True)
class OpenedCall:
    node: str
    reply: str | None  # the greeting; None when the call was resumed
    resumed: bool


@dataclass(frozen=True, slots=True)
class Forwarded:
    """dm's answer to a forwarded REST request, body untouched."""

    status: int
    content: bytes
    content_type: str
    retry_after: str | None


class DmClient:
    def __init__(
        self, http: aiohttp.ClientSession, base_url: str, timeout_s: float, api_key: str = ""
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._auth = {"authorization": f"Bearer {api_key}"} if api_key else {}

    def _headers(self, owner: str | None, accept: str, body: bool) -> dict[str, str]:
        headers = {**self._auth, "accept": accept}
        if body:
            headers["content-type"] = JSON
        if owner is not None:
            headers[OWNER_HEADER] = owner
        return headers

    async def _request(
        self, method: str, path: str, content: bytes | None, owner: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        headers = self._headers(owner, JSON, content is not None)
        try:
            async with (
                asyncio.timeout(self.timeout_s),
                self.http.request(
                    method, self.base_url + path, data=content, headers=headers
                ) as response,
            ):
                return response.status, _headers(response), await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise unreachable(exc) from exc

    async def _json(
        self, method: str, path: str, owner: str | None, body: Any = None
    ) -> dict[str, Any]:
        content = orjson.dumps(body) if body is not None else None
        status, headers, answer = await self._request(method, path, content, owner)
        if status >= 400:
            raise error_of(status, answer, headers)
        data: dict[str, Any] = orjson.loads(answer)
        return data

    async def open_call(
        self, call_id: str, flow: str, lang: str, metadata: dict[str, Any], owner: str | None
    ) -> OpenedCall:
        """Create the call, or resume it when it exists with the same flow and language.

        A call of another owner: dm refuses to create it again (409) and does not show it
        to this owner (404), so this raises `call_not_found`.
        """
        body = {"call_id": call_id, "flow": flow, "lang": lang, "metadata": metadata}
        try:
            created = await self._json("POST", "/v1/calls", owner, body)
        except DmError as exc:
            if exc.code != "call_exists":
                raise
        else:
            return OpenedCall(created["node"], created["reply"], resumed=False)
        call = await self.get_call(call_id, owner)
        if call["ended"]:
            raise DmError(410, "call_ended", f"call '{call_id}' has ended")
        if (call["flow"], call["lang"]) != (flow, lang):
            raise DmError(
                409, "call_exists", f"call '{call_id}' exists with another flow or language"
            )
        return OpenedCall(call["node"], None, resumed=True)

    async def get_call(self, call_id: str, owner: str | None) -> dict[str, Any]:
        return await self._json("GET", f"/v1/calls/{call_id}", owner)

    async def end_call(self, call_id: str, owner: str | None) -> dict[str, Any]:
        """End the call (dm repeats the same summary for an ended one)."""
        return await self._json("DELETE", f"/v1/calls/{call_id}", owner)

    async def interrupt(self, call_id: str, turn_id: str, heard: str, owner: str | None) -> str:
        """Cancel the turn in flight, or record what was heard of a finished one."""
        path = f"/v1/calls/{call_id}/turns/{turn_id}/interrupt"
        data = await self._json("POST", path, owner, {"heard": heard})
        return str(data["status"])

    async def partial(self, call_id: str, text: str, owner: str | None) -> None:
        """What the caller is saying so far (dm answers 202; a dm without the route, 404)."""
        await self._json("POST", f"/v1/calls/{call_id}/partial", owner, {"text": text})

    async def turn_events(
        self, call_id: str, turn_id: str, text: str, owner: str | None
    ) -> AsyncIterator[str]:
        """The data of each SSE event of one turn, in order; the caller bounds its time."""
        body = orjson.dumps({"turn_id": turn_id, "text": text})
        async with self.stream(call_id, body, owner) as chunks:
            async for data in sse_data(chunks):
                yield data

    @asynccontextmanager
    async def stream(
        self, call_id: str, content: bytes, owner: str | None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """A turn as dm's raw SSE bytes; DmError if dm refuses it or cannot be reached."""
        url = f"{self.base_url}/v1/calls/{call_id}/turns"
        headers = self._headers(owner, SSE, body=True)
        try:
            async with self.http.post(url, data=content, headers=headers) as response:
                if response.status >= 400:
                    raise error_of(response.status, await response.read(), _headers(response))
                yield _dm_errors(response.content.iter_any())
        except aiohttp.ClientError as exc:
            raise unreachable(exc) from exc

    async def forward(
        self, method: str, path: str, content: bytes | None, owner: str | None = None
    ) -> Forwarded:
        """Pass a REST request through to dm as it is."""
        status, headers, answer = await self._request(method, path, content, owner)
        return Forwarded(
            status, answer, headers.get("content-type", JSON), headers.get("retry-after")
        )

    async def healthy(self, timeout_s: float) -> bool:
        try:
            async with (
                asyncio.timeout(timeout_s),
                self.http.get(self.base_url + "/healthz", headers=self._auth) as response,
            ):
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False


def _headers(response: aiohttp.ClientResponse) -> dict[str, str]:
    return {name.lower(): value for name, value in response.headers.items()}


def error_of(status: int, content: bytes, headers: dict[str, str]) -> DmError:
    """The DmError for one of dm's error answers, in the contract's shape or not."""
    code, message = "dm_error", f"dialog manager answered {status}"
    try:
        err = orjson.loads(content)["error"]
        code, message = str(err["code"]), str(err["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        pass
    return DmError(status, code, message, headers.get("retry-after"))


async def _dm_errors(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The chunks, with a connection failure midway raised as DmError."""
    try:
        async for chunk in chunks:
            yield chunk
    except aiohttp.ClientError as exc:
        raise unreachable(exc) from exc


async def sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """The `data` of each event in an SSE byte stream (one data line per event)."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        while True:
            end = buffer.find(b"\n\n")
            if end < 0:
                break
            block, buffer = buffer[:end], buffer[end + 2 :]
            for line in block.split(b"\n"):
                if line.startswith(b"data:"):
                    yield line[5:].lstrip(b" ").decode()
