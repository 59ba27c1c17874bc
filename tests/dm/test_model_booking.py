"""A Russian booking call through dm on the real embedded model (llm-local, SmolLM2-135M).

The model's wording is not asserted; what is: every turn is answered by the model
(no fallback), with output valid for the node's schema, and the call reaches its
final node with every detail right, because code decides slots and moves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from support.llm_upstreams import local_settings, serve_llm_local
from support.stack import dm_stack

pytestmark = pytest.mark.model

CALLER = [
    ("Здравствуйте, меня зовут Мария Иванова", "ask_phone"),
    ("Восемь девятьсот шестнадцать, сто двадцать три, сорок пять, шестьдесят семь", "ask_exam"),
    ("Мне нужно МРТ коленного сустава", "ask_date"),
    ("Давайте завтра", "ask_time"),
    ("В три часа дня", "confirm"),
    ("Да, всё верно", "done"),
]


@pytest.fixture
async def dm_on_model(redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    # The SLA (5 s) is measured in bench/; a generous deadline here keeps a busy CI
    # machine from turning a slow turn into a fallback.
    llm = local_settings(llm_backend="embedded", llm_n_threads=1, llm_request_timeout_s=120)
    with (
        serve_llm_local(llm, ready_timeout_s=180) as llm_url,
        # The LLM path on every turn: the rules path is measured on the dialog corpus.
        dm_stack(
            redis_url, llm_base_url=f"{llm_url}/v1", dm_turn_deadline_s=60.0, dm_rules="off"
        ) as stack,
    ):
        async with httpx.AsyncClient(base_url=stack.dm_url, timeout=120) as client:
            yield client


async def test_russian_booking_on_the_embedded_model(dm_on_model: httpx.AsyncClient) -> None:
    client = dm_on_model
    created = await client.post("/v1/calls", json={"flow": "booking_mri", "lang": "ru"})
    call_id = created.json()["call_id"]
    result: dict[str, object] = {}
    for number, (text, node) in enumerate(CALLER, 1):
        response = await client.post(
            f"/v1/calls/{call_id}/turns", json={"turn_id": f"t{number}", "text": text}
        )
        result = response.json()
        assert response.status_code == 200, result
        assert result["fallback"] is False, result
        assert result["next_node"] == node, result
        usage = result["usage"]
        assert isinstance(usage, dict)
        assert 0 < usage["completion_tokens"] <= 96
    tomorrow = (datetime.now(ZoneInfo("Europe/Moscow")) + timedelta(days=1)).date()
    assert result["done"] is True
    assert result["slots"] == {
        "name": "Мария Иванова",
        "phone": "+79161234567",
        "exam": "mri_knee",
        "date": tomorrow.isoformat(),
        "time": "15:00",
        "confirmed": True,
        "change": None,
    }
    assert str(result["reply"]).startswith("Готово, Мария Иванова!")
