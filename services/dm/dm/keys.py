"""Redis key names. All keys of one call share the hash tag `{call_id}` so the
Lua scripts touching them run unchanged on Redis Cluster."""

PREFIX = "dm"
INTERRUPT_CHANNEL = f"{PREFIX}:interrupts"


def state_key(call_id: str) -> str:
    """Hash: `v` (version), `ended` ("0"/"1"), `doc` (CallState JSON)."""
    return f"{PREFIX}:{{{call_id}}}:state"


def turns_key(call_id: str) -> str:
    """Hash: `h:<turn_id>` the text's digest, `r:<turn_id>` the stored TurnResult JSON."""
    return f"{PREFIX}:{{{call_id}}}:turns"


def order_key(call_id: str) -> str:
    """List: the turn_ids of `turns_key` oldest first, so only the last few are kept."""
    return f"{PREFIX}:{{{call_id}}}:order"


def lock_key(call_id: str) -> str:
    """String: the turn_id in flight, with a TTL a little past the turn deadline."""
    return f"{PREFIX}:{{{call_id}}}:lock"


def interrupts_key(call_id: str) -> str:
    """Hash: turn_id -> JSON of what the caller heard before barging in. Kept apart
    from the state so recording it never races a turn's compare-and-set."""
    return f"{PREFIX}:{{{call_id}}}:interrupts"
