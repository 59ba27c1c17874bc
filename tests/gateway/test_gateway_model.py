"""One Russian booking call end to end on the real embedded model:
WebSocket → gateway → dm → llm-local (SmolLM2-135M) → Redis. The model's wording
and understanding are not asserted, only the protocol."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from gateway_harness import gateway_settings

from gateway.app import create_app
from support.llm_upstreams import local_settings, serve_llm_local
from support.servers import ServerThread
from support.stack import dm_stack

pytestmark = pytest.mark.model

CALLER = [
    "Меня зовут Мария",
    "Восемь девятьсот шестнадцать, сто двадцать три, сорок пять, шестьдесят семь",
    "МРТ колена",
    "Завтра",
    "В три часа дня",
    "Да, всё верно",
]


@pytest.fixture
def model_gateway(redis_url: str) -> Iterator[str]:
    """A gateway in front of dm on llm-local's embedded backend."""
    # A generous timeout: a busy 2-core machine can slow the model well below its usual pace.
    llm = local_settings(llm_backend="embedded", llm_request_timeout_s=300)
    with (
        serve_llm_local(llm, ready_timeout_s=180) as llm_url,
        dm_stack(redis_url, llm_base_url=f"{llm_url}/v1", dm_turn_deadline_s=5.0) as stack,
        ServerThread(create_app(gateway_settings(stack.dm_url)), ws=True) as gateway,
    ):
        yield gateway.url


async def test_booking_call_on_the_embedded_model(model_gateway: str, open_call: Any) -> None:
    async with open_call("model-booking", base_url=model_gateway) as call:
        started = await call.start("booking_mri", "ru")
        assert (started["type"], started["node"], started["resumed"]) == (
            "call.started",
            "ask_name",
            False,
        )
        done: dict[str, Any] = {}
        for index, text in enumerate(CALLER, start=1):
            messages = await call.turn(f"t{index}", text)
            kinds = [m["type"] for m in messages]
            done = messages[-1]
            assert kinds[-1] == "turn.done"
            # A turn decided by rules answers at once, without a backchannel.
            spoken = 0 if done["understood_by"] == "rules" else 1
            assert kinds[:spoken] == ["backchannel"] * spoken
            assert set(kinds[spoken:-1]) == {"reply.delta"}
            assert "".join(m["text"] for m in messages[spoken:-1]) == done["reply"]
            assert done["node_before"] != "done"
            if done["done"]:
                break
        if not done["done"]:
            await call.send("call.end", reason="test over")
        ended = await call.recv_until("call.ended")
        assert ended[-1]["summary"]["ended"] is True
        assert await call.closed() == (1000, "call ended")
