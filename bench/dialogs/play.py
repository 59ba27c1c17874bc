"""Play a corpus dialog against dm or the gateway over the REST turn API."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.dialogs.corpus import Dialog

_call_numbers = itertools.count(1)


@dataclass
class Turn:
    text: str
    result: dict[str, Any]


@dataclass
class Played:
    dialog: Dialog
    call_id: str
    greeting: str
    turns: list[Turn] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)  # GET /v1/calls/{id} at the end
    error: str | None = None

    @property
    def done(self) -> bool:
        return bool(self.turns) and bool(self.turns[-1].result.get("done"))

    @property
    def outcome(self) -> str | None:
        return self.turns[-1].result.get("outcome") if self.done else None


def max_turns(dialog: Dialog) -> int:
    return 2 * dialog.minimum_turns + 4


def play(client: httpx.Client, dialog: Dialog, run_id: str) -> Played:
    """Answer whatever the agent asks, from the dialog's lines for that node."""
    call_id = f"{run_id}-{dialog.id}-{next(_call_numbers)}"
    body: dict[str, Any] = {"flow": dialog.flow, "lang": dialog.lang, "call_id": call_id}
    if dialog.region:
        body["region"] = dialog.region
    created = client.post("/v1/calls", json=body)
    if created.status_code != 201:
        played = Played(dialog, call_id, "")
        played.error = f"create: {created.status_code} {created.text[:200]}"
        return played
    played = Played(dialog, call_id, created.json()["reply"])
    node = created.json()["node"]
    asked: dict[str, int] = {}
    first_line = next(iter(dialog.caller.values()))[0]
    for number in range(1, max_turns(dialog) + 1):
        lines = dialog.caller.get(node)
        if lines:
            text = lines[min(asked.get(node, 0), len(lines) - 1)]
            asked[node] = asked.get(node, 0) + 1
        else:
            text = first_line  # asked for something already said: the caller repeats
        response = client.post(
            f"/v1/calls/{call_id}/turns", json={"turn_id": f"t{number}", "text": text}
        )
        if response.status_code != 200:
            played.error = f"turn {number}: {response.status_code} {response.text[:200]}"
            break
        result = response.json()
        played.turns.append(Turn(text, result))
        if result["done"]:
            break
        node = result["next_node"]
    described = client.get(f"/v1/calls/{call_id}")
    if described.status_code == 200:
        played.final = described.json()
    return played
