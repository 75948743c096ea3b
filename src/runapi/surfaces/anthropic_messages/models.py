"""`GET /v1/models` and `GET /v1/models/{id}` in Anthropic's shape (protocols.md §3.9)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from runapi.catalog.loader import ModelEntry
from runapi.surfaces.anthropic_messages import response as wire

_encoder = msgspec.json.Encoder()
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000

# Catalog status → Anthropic `lifecycle`; a model under maintenance is still callable.
_LIFECYCLE = {"active": "active", "maintenance": "active", "disabled": "retired"}


def display_name(model_id: str) -> str:
    """`MiniMax-M2.7-highspeed` → `MiniMax M2.7 highspeed`."""
    return model_id.replace("-", " ")


def model_info(entry: ModelEntry) -> wire.ModelOut:
    if entry.released:
        created = f"{entry.released}T00:00:00Z" if len(entry.released) == 10 else entry.released
    else:
        created = entry.effective_from.strftime("%Y-%m-%dT%H:%M:%SZ")
    return wire.ModelOut(
        id=entry.id,
        display_name=display_name(entry.id),
        created_at=created,
        lifecycle=_LIFECYCLE.get(entry.status, "active"),
        max_input_tokens=entry.context_window,
        max_tokens=entry.max_output,
    )


def render_model(entry: ModelEntry) -> bytes:
    return _encoder.encode(model_info(entry))


def render_models(
    entries: Sequence[ModelEntry],
    *,
    limit: int = DEFAULT_LIMIT,
    after_id: str | None = None,
    before_id: str | None = None,
) -> bytes:
    """One page of the list, in the order given (the caller sorts; Anthropic lists newest first).
    Disabled models are left out. An unknown cursor id gives an empty page."""
    listed = [e for e in entries if e.status != "disabled"]
    ids = [e.id for e in listed]
    limit = max(1, min(limit, MAX_LIMIT))
    if after_id is not None:
        start = ids.index(after_id) + 1 if after_id in ids else len(ids)
        page, has_more = listed[start : start + limit], start + limit < len(listed)
    elif before_id is not None:
        end = ids.index(before_id) if before_id in ids else 0
        page, has_more = listed[max(0, end - limit) : end], end - limit > 0
    else:
        page, has_more = listed[:limit], limit < len(listed)
    data = [model_info(e) for e in page]
    return _encoder.encode(
        wire.ModelPageOut(
            data=data,
            has_more=has_more,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
        )
    )
