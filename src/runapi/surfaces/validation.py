"""Turn msgspec's decode errors into `InvalidRequest` with an OpenAI-style `param`."""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from runapi.errors import InvalidRequest

T = TypeVar("T")

_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")


def invalid_from_msgspec(exc: msgspec.DecodeError) -> InvalidRequest:
    text = str(exc)
    if not isinstance(exc, msgspec.ValidationError):
        return InvalidRequest(f"We could not parse the JSON body of your request: {text}")
    match = _PATH.search(text)
    param = None
    message = text
    if match:
        param = match.group("path").lstrip(".") or None
        message = text[: match.start()]
    missing = _MISSING.match(message)
    if missing:  # name the missing field itself, not the object that lacks it
        param = f"{param}.{missing.group('field')}" if param else missing.group("field")
    if param is not None:
        message = f"Invalid value for '{param}': {message}"
    return InvalidRequest(message, param=param)


def decode_or_invalid(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        raise invalid_from_msgspec(exc) from None
