"""The gateway's signature over reasoning text, shared by the surfaces that echo reasoning back.

Anthropic clients must send `thinking` blocks back with a `signature`; Responses clients send
`reasoning` items back with `encrypted_content`. Both carry the same token: an HMAC of the
reasoning text under the gateway's key, so a later turn can tell reasoning the gateway produced
from reasoning a client made up or brought from another vendor (protocols.md §6.7). The token is a
pure function of the text, so every surface signing the same text produces the same
`ReasoningPart.signature`, and a conversation can move between surfaces.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

_PREFIX = "rsig1."
# Domain separation: this key may sign other things (webhooks) elsewhere.
_CONTEXT = b"runapi.reasoning.v1\x00"


class ReasoningSigner:
    """Signs and checks reasoning text. Build one per process; it is immutable and thread-safe."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("the reasoning signing key must not be empty")
        self._key = key

    def sign(self, text: str) -> str:
        mac = hmac.new(self._key, _CONTEXT + text.encode("utf-8"), hashlib.sha256).digest()
        return _PREFIX + base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def verify(self, text: str, signature: str) -> bool:
        if not signature.startswith(_PREFIX):
            return False
        return hmac.compare_digest(self.sign(text), signature)

    def checked(self, text: str, signature: str | None) -> str | None:
        """The signature if it is ours for this text, else None (foreign signatures are dropped)."""
        if signature and self.verify(text, signature):
            return signature
        return None
