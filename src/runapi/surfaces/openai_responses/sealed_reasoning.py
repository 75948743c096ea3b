"""`reasoning.encrypted_content`: the reasoning text and the gateway's signature, sealed so a client
can echo it back without server state (protocols.md §6.7, §2.6).

It is signed, not encrypted: the same text is already in the item's `content`. The point is that a
later turn can trust it came from the gateway and hand it back upstream (MiniMax needs its reasoning
on every turn of a tool-use conversation).
"""

from __future__ import annotations

import base64
import binascii

import msgspec

from runapi.canonical import ReasoningPart
from runapi.surfaces.reasoning_signature import ReasoningSigner


class _Sealed(msgspec.Struct, frozen=True):
    v: int
    text: str
    sig: str


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Sealed)
_VERSION = 1


def seal(text: str, signer: ReasoningSigner) -> str:
    raw = _encoder.encode(_Sealed(_VERSION, text, signer.sign(text)))
    return base64.b64encode(raw).decode("ascii")


def unseal(blob: str, signer: ReasoningSigner) -> ReasoningPart | None:
    """The reasoning inside `blob` if the gateway sealed it; None for anyone else's (e.g. OpenAI's)."""
    try:
        sealed = _decoder.decode(base64.b64decode(blob, validate=True))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return None
    if sealed.v != _VERSION or not signer.verify(sealed.text, sealed.sig):
        return None
    return ReasoningPart(sealed.text, sealed.sig)
