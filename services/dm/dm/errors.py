"""What can go wrong with a call, in the dialog's own terms; `dm.api` maps each to HTTP."""

from __future__ import annotations


class CallError(Exception):
    """A request about a call that cannot be done. `retry_after` (seconds) when a retry
    may succeed."""

    retry_after: int | None = None


class UnknownFlow(CallError):
    pass


class UnsupportedLanguage(CallError):
    pass


class UnsupportedRegion(CallError):
    pass


class CallExists(CallError):
    pass


class CallNotFound(CallError):
    """No such call, or not one the caller's key may see."""


class CallEnded(CallError):
    pass


class TurnIdReused(CallError):
    pass


class TurnInProgress(CallError):
    retry_after = 1


class TurnNotFound(CallError):
    pass


class TurnCancelled(CallError):
    pass


class StateConflict(CallError):
    """The call changed under a write that expected an earlier version."""


class TurnFailed(CallError):
    """The turn failed for a reason of ours (not the caller's); retrying it is safe."""

    retry_after = 1


class InterruptTimeout(CallError):
    retry_after = 1
