"""API-key auth: `Authorization: Bearer <key>`, or `?token=<key>` on the WebSocket.

A call belongs to the key that created it. dm stores the key's owner label (a hash,
never the key) and answers 404 to any other label, so every call route sends it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

ANONYMOUS = "anonymous"
OWNER_HEADER = "X-Call-Owner"


def owner_label(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: `owner` is their key's label for dm, None with auth off."""

    owner: str | None

    @property
    def label(self) -> str:
        """Their name for rate limits, socket caps and logs (never the key)."""
        return self.owner or ANONYMOUS


class Authenticator:
    """Checks a presented key against GATEWAY_API_KEYS; no keys means auth is off."""

    def __init__(self, keys: frozenset[str]) -> None:
        self._keys = tuple((key.encode(), owner_label(key)) for key in sorted(keys))

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def identify(self, authorization: str | None, token: str | None = None) -> Caller | None:
        """The caller, or None if refused. A header, when present, is the credential."""
        if not self.enabled:
            return Caller(None)
        presented = bearer_token(authorization) if authorization is not None else token
        if not presented:
            return None
        candidate = presented.encode()
        owner = None
        # Compare with every key so the time taken does not tell which one nearly matched.
        for key, label in self._keys:
            if hmac.compare_digest(candidate, key):
                owner = label
        return Caller(owner) if owner is not None else None


def bearer_token(authorization: str) -> str | None:
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None
