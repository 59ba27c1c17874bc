"""The callers of issue #9, played through dm's REST API: real Redis, a scripted LLM that
understands nothing (it answers the smallest valid object), so what the call does comes
from dm reading the caller's words. Each test is a failure callers met before."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from itertools import count
from typing import Any

import httpx
import pytest

from support.stack import DmStack, dm_stack

TODAY = "2027-03-10"  # a Wednesday


@pytest.fixture
def stack(redis_url: str) -> Iterator[DmStack]:
    with dm_stack(redis_url, dm_today=TODAY) as running:
        yield running


@pytest.fixture
async def client(stack: DmStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.dm_url, timeout=10) as http:
        yield http


class Caller:
    """One call, said line by line; remembers every TurnResult."""

    def __init__(self, client: httpx.AsyncClient, call_id: str) -> None:
        self.client = client
        self.call_id = call_id
        self.results: list[dict[str, Any]] = []
        self._turns = count(1)

    async def start(self, lang: str, region: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"flow": "booking_mri", "lang": lang, "call_id": self.call_id}
        if region:
            body["region"] = region
        created = await self.client.post("/v1/calls", json=body)
        assert created.status_code == 201, created.text
        return dict(created.json())

    async def says(self, text: str) -> dict[str, Any]:
        response = await self.client.post(
            f"/v1/calls/{self.call_id}/turns",
            json={"turn_id": f"t{next(self._turns)}", "text": text},
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        self.results.append(result)
        return result


async def caller(client: httpx.AsyncClient, lang: str, region: str | None = None) -> Caller:
    call = Caller(client, f"caller-{lang}-{id(client)}-{next(_numbers)}")
    await call.start(lang, region)
    return call


_numbers = count(1)


@pytest.mark.parametrize(
    ("said", "region", "e164"),
    [
        ("my number is 415 555 0134", None, "+14155550134"),
        ("555 123 4567", None, "+15551234567"),
        ("ok, 2025550143", None, "+12025550143"),
        ("07700 900123", "GB", "+447700900123"),
        ("oh seven seven double oh nine hundred one two three", "GB", "+447700900123"),
        ("+1 (212) 555-0199", None, "+12125550199"),
    ],
)
async def test_english_phone_numbers_are_taken(
    client: httpx.AsyncClient, said: str, region: str | None, e164: str
) -> None:
    call = await caller(client, "en", region)
    await call.says("hi this is maria")
    result = await call.says(said)
    assert result["slots"]["phone"] == e164
    assert result["next_node"] == "ask_exam"
    assert result["understood_by"] == "rules"


async def test_a_later_answer_never_overwrites_the_name(client: httpx.AsyncClient) -> None:
    call = await caller(client, "en")
    await call.says("um maria")
    await call.says("415 555 0134")
    await call.says("a knee mri")
    result = await call.says("next friday")
    assert result["slots"]["name"] == "Maria"
    assert result["slots"]["date"] == "2027-03-12"


async def test_an_exam_word_at_the_name_step_is_not_a_name(client: httpx.AsyncClient) -> None:
    call = await caller(client, "ru")
    result = await call.says("таз")
    assert result["slots"]["name"] is None
    assert result["slots"]["exam"] == "mri_pelvis"  # kept: no need to ask for it again
    assert result["next_node"] == "ask_name"
    result = await call.says("ой, имя: Наталья")
    assert result["slots"]["name"] == "Наталья"
    result = await call.says("8 916 123 45 67")
    assert result["next_node"] == "ask_date"  # the exam was given already


async def test_a_name_after_fillers_is_taken(client: httpx.AsyncClient) -> None:
    call = await caller(client, "ru")
    result = await call.says("Эээ, меня... Наталья")
    assert result["slots"]["name"] == "Наталья"
    assert result["next_node"] == "ask_phone"


async def _at_readback(call: Caller) -> None:
    await call.says("Мария")
    await call.says("8 916 123 45 67")
    await call.says("колено")
    await call.says("завтра")
    result = await call.says("в 11")
    assert result["next_node"] == "confirm"


async def test_naming_the_wrong_detail_at_the_readback_goes_straight_to_it(
    client: httpx.AsyncClient,
) -> None:
    call = await caller(client, "ru")
    await _at_readback(call)
    result = await call.says("нет, время другое")
    assert result["next_node"] == "ask_time"
    assert result["slots"]["time"] is None
    assert result["slots"]["name"] == "Мария"
    result = await call.says("в 16:00")
    assert result["next_node"] == "confirm"
    assert result["slots"]["name"] == "Мария"  # the correction reset nothing else
    assert result["slots"]["time"] == "16:00"
    assert "Здравствуйте" not in result["reply"]  # the greeting is never replayed
    result = await call.says("да, всё верно")
    assert result["done"] is True
    assert result["outcome"] == "completed"


async def test_a_new_value_at_the_readback_replaces_it_and_reads_back_again(
    client: httpx.AsyncClient,
) -> None:
    call = await caller(client, "ru")
    await _at_readback(call)
    result = await call.says("нет, не в 11, а в 12")
    assert result["next_node"] == "confirm"
    assert result["slots"]["time"] == "12:00"
    assert "12:00" in result["reply"]  # read back again


async def test_actually_make_it_tuesday_changes_the_date_at_any_step(
    client: httpx.AsyncClient,
) -> None:
    call = await caller(client, "en")
    await call.says("it's maria")
    await call.says("415 555 0134")
    await call.says("my knee")
    await call.says("monday")
    result = await call.says("actually make it tuesday")
    assert result["slots"]["date"] == "2027-03-16"
    assert result["next_node"] == "ask_time"
    assert result["reply"].startswith("Okay, I've changed that.")


async def test_no_wait_the_lower_back_not_the_knee(client: httpx.AsyncClient) -> None:
    call = await caller(client, "en")
    await call.says("it's maria")
    await call.says("415 555 0134")
    await call.says("my knee")
    result = await call.says("no wait my lower back not the knee")
    assert result["slots"]["exam"] == "mri_spine"
    assert result["slots"]["name"] == "Maria"


@pytest.mark.parametrize(
    ("lang", "said"),
    [("ru", "соедините с оператором"), ("en", "can i talk to a human"), ("en", "operator")],
)
async def test_asking_for_a_person_transfers_the_call(
    client: httpx.AsyncClient, stack: DmStack, lang: str, said: str
) -> None:
    call = await caller(client, lang)
    await call.says("Мария" if lang == "ru" else "maria")
    result = await call.says(said)
    assert result["done"] is True
    assert result["outcome"] == "transfer"
    assert result["next_node"] == "transfer"
    described = (await client.get(f"/v1/calls/{call.call_id}")).json()
    assert described["transfer_reason"] == "caller_asked"
    metrics = (await client.get("/metrics")).text
    assert 'dm_transfers_total{flow="booking_mri",reason="caller_asked"}' in metrics


async def test_a_caller_who_is_never_understood_is_handed_over_not_looped(
    client: httpx.AsyncClient,
) -> None:
    call = await caller(client, "en")
    await call.says("maria")
    results = [await call.says("uh") for _ in range(3)]
    assert [r["next_node"] for r in results] == ["ask_phone", "ask_phone", "transfer"]
    assert results[-1]["outcome"] == "transfer"
    described = (await client.get(f"/v1/calls/{call.call_id}")).json()
    assert described["transfer_reason"] == "not_understood"


ASKED_NAME_AGAIN = {
    "ru": "Простите, не расслышала. Назовите, пожалуйста, ваше имя.",
    "en": "Sorry, I did not catch that. Could you tell me your name?",
}


@pytest.mark.parametrize(
    ("lang", "said", "then", "slot", "value"),
    [
        ("ru", "алло? алло, вы меня слышите?", "да, Зинаида", "name", "Зинаида"),
        ("en", "hello? can you hear me", "yeah hi its chris", "name", "Chris"),
        ("en", "uh", "um irene", "name", "Irene"),
    ],
)
async def test_a_line_check_gets_the_question_again_at_once(
    client: httpx.AsyncClient, lang: str, said: str, then: str, slot: str, value: str
) -> None:
    call = await caller(client, lang)
    result = await call.says(said)
    assert result["next_node"] == "ask_name"
    assert result["understood_by"] == "rules"  # nothing to read: no wait for the LLM
    assert result["timings"]["llm_ms"] == 0
    assert result["reply"] == ASKED_NAME_AGAIN[lang]  # the question again, no answer to "алло?"
    result = await call.says(then)
    assert result["slots"][slot] == value
    assert result["next_node"] == "ask_phone"


async def test_a_time_outside_opening_hours_is_refused_with_the_reason(
    client: httpx.AsyncClient,
) -> None:
    call = await caller(client, "en")
    for line in ("maria", "415 555 0134", "knee", "tomorrow"):
        await call.says(line)
    result = await call.says("at 10 pm")
    assert result["next_node"] == "ask_time"
    assert result["slots"]["time"] is None
    assert "open from 8 am to 8 pm" in result["reply"]


async def test_a_date_in_the_past_is_refused_with_the_reason(client: httpx.AsyncClient) -> None:
    call = await caller(client, "ru")
    for line in ("Мария", "8 916 123 45 67", "колено"):
        await call.says(line)
    result = await call.says("вчера")
    assert result["next_node"] == "ask_date"
    assert "уже прошёл" in result["reply"]


async def test_a_partial_number_is_kept_and_only_the_rest_asked(client: httpx.AsyncClient) -> None:
    call = await caller(client, "ru")
    await call.says("Мария")
    result = await call.says("восемь девятьсот шестнадцать сто двадцать три... эээ")
    assert result["next_node"] == "ask_phone"
    assert "891 612 3" in result["reply"]
    result = await call.says("сорок пять шестьдесят семь")
    assert result["slots"]["phone"] == "+79161234567"


async def test_a_question_back_is_answered_then_asked_again(client: httpx.AsyncClient) -> None:
    call = await caller(client, "en")
    await call.says("maria")
    result = await call.says("why do you need my number?")
    assert result["reply"].startswith("We need it to confirm the booking")
    assert result["next_node"] == "ask_phone"
    assert result["understood_by"] == "llm"  # a question is not decided by rules


async def test_a_readback_reads_the_phone_as_the_country_says_it(
    client: httpx.AsyncClient,
) -> None:
    call = await caller(client, "en", "GB")
    await call.says("it's james")
    await call.says("07700 900123")
    await call.says("knee")
    await call.says("friday next week")
    result = await call.says("half ten")
    assert result["next_node"] == "confirm"
    assert "07700 900123" in result["reply"]
    assert result["slots"]["date"] == "2027-03-19"
    assert result["slots"]["time"] == "10:30"
