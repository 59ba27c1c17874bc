"""Reading a backend's event stream in tests."""

from __future__ import annotations

from llm_local.backends.base import Backend, Finished, GenerationRequest, TextDelta


async def collect(backend: Backend, request: GenerationRequest) -> tuple[list[str], Finished]:
    """The text deltas of one generation and its Finished event, which must come last."""
    deltas: list[str] = []
    finished: Finished | None = None
    async for event in backend.stream(request):
        assert finished is None, "nothing may follow Finished"
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        else:
            finished = event
    assert finished is not None
    return deltas, finished
