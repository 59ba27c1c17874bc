"""API-key auth: `Authorization: Bearer <key>`, or `?token=<key>` on the WebSocket."""

from __future__ import annotations

import hashlib
import hmac

ANONYMOUS = "anonymous"


class Authenticator:
    """Checks a presented key against GATEWAY_API_KEYS; no keys means auth is off."""

    def __init__(self, keys: frozenset[str]) -> None:
        self._keys = tuple(key.encode() for key in keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def identify(self, authorization: str | None, token: str | None = None) -> str | None:
        """The caller's key label (for limits and logs, never the key), or None if refused."""
        if not self.enabled:
            return ANONYMOUS
        presented = bearer_token(authorization) if authorization is not None else token
        if not presented:
            return None
        candidate = presented.encode()
        # Compare with every key so the time taken does not tell which one nearly matched.
        matched = [hmac.compare_digest(candidate, key) for key in self._keys]
        if not any(matched):
            return None
        return "key-" + hashlib.sha256(candidate).hexdigest()[:12]


def bearer_token(authorization: str) -> str | None:
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None
