"""Idempotency keys: one owner under concurrency, 409 on a different body, 24 h expiry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from runapi.errors import Conflict
from runapi.store.database import Database
from runapi.store.schema import idempotency_keys, tasks
from runapi.tasks.idempotency import IdempotencyStore, request_fingerprint
from runapi.tasks.store import TaskStore

from .helpers import new_record


def test_fingerprint_ignores_key_order_and_spacing() -> None:
    a = request_fingerprint("POST", "/v1/chat/completions", b'{"model": "m", "messages": [1, 2]}')
    b = request_fingerprint("post", "/v1/chat/completions", b'{"messages":[1,2],"model":"m"}')
    assert a == b
    assert len(a) == 64
    assert a != request_fingerprint("POST", "/v1/messages", b'{"messages":[1,2],"model":"m"}')
    assert a != request_fingerprint("POST", "/v1/chat/completions", b'{"messages":[2,1],"model":"m"}')
    assert request_fingerprint("POST", "/x", b"not json") != request_fingerprint("POST", "/x", b"not json!")


async def test_twenty_concurrent_identical_claims_have_one_owner(db: Database) -> None:
    store = IdempotencyStore(db)
    fp = request_fingerprint("POST", "/v1/chat/completions", b'{"model":"m"}')
    claims = await asyncio.gather(*(store.claim("key_a", "k-1", fp, f"task_{i}") for i in range(20)))
    owners = [c for c in claims if c.owner]
    assert len(owners) == 1
    assert {c.task_id for c in claims} == {owners[0].task_id}


async def test_different_body_conflicts_and_keys_are_per_api_key(db: Database) -> None:
    store = IdempotencyStore(db)
    assert (await store.claim("key_a", "k-1", "f" * 64, "task_1")).owner
    with pytest.raises(Conflict) as info:
        await store.claim("key_a", "k-1", "e" * 64, "task_2")
    assert info.value.code == "idempotency_key_reused"
    assert info.value.status == 409
    assert (await store.claim("key_b", "k-1", "e" * 64, "task_3")).owner


async def test_release_frees_a_key_rejected_before_its_task_existed(db: Database) -> None:
    store = IdempotencyStore(db)
    await store.claim("key_a", "k-1", "f" * 64, "task_1")
    await store.release("key_a", "k-1", "task_other")  # not this task's claim: kept
    assert not (await store.claim("key_a", "k-1", "f" * 64, "task_2")).owner
    await store.release("key_a", "k-1", "task_1")
    assert (await store.claim("key_a", "k-1", "e" * 64, "task_3")).owner


async def test_expired_key_is_free_again(db: Database) -> None:
    store = IdempotencyStore(db)
    await store.claim("key_a", "k-1", "f" * 64, "task_1")
    async with db.begin() as conn:
        await conn.execute(
            update(idempotency_keys).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    again = await store.claim("key_a", "k-1", "e" * 64, "task_2")
    assert again.owner
    assert again.task_id == "task_2"
    await store.claim("key_a", "k-2", "f" * 64, "task_3")
    async with db.begin() as conn:
        await conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.key == "k-2")
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert await store.purge_expired() == 1


async def test_create_idempotent_makes_one_task_under_concurrency(db: Database, store: TaskStore) -> None:
    fp = request_fingerprint("POST", "/v1/chat/completions", b'{"model":"m"}')
    records = [new_record(store.settings) for _ in range(20)]
    for record in records:
        record.idempotency_key, record.request_fingerprint = "same-key", fp
    claims = await asyncio.gather(*(store.create_idempotent(r) for r in records))
    owner = [c for c in claims if c.owner]
    assert len(owner) == 1
    assert all(c.task_id == owner[0].task_id for c in claims)
    async with db.connect() as conn:  # durable at once, without a flush
        assert (await conn.execute(select(func.count()).select_from(tasks))).scalar_one() == 1
    got = await store.get(owner[0].task_id, 1)
    assert got.idempotency_key == "same-key"
    assert got.request_fingerprint == fp
