"""Hypothesis strategies for the fuzz tests: arbitrary JSON values, and a valid JSON document with
one place in it (at any depth) replaced by one of them or dropped."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import strategies as st

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["user", "assistant", "tool", "system", "text", "function", "auto", "image_url"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document (dict keys and list indexes), the root excluded."""
    found: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in items:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _replaced(document: Any, path: tuple[Any, ...], new: Any, drop: bool) -> Any:
    copy = msgspec.json.decode(msgspec.json.encode(document))
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    if drop:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return copy


@st.composite
def mangled_json(draw: st.DrawFn, document: Any) -> Any:
    """A copy of `document` with one place replaced by an arbitrary JSON value, or dropped."""
    path = draw(st.sampled_from(_paths(document)))
    return _replaced(document, path, draw(json_values), drop=draw(st.booleans()))
