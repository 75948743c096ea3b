"""PostgreSQL and Redis for the multi-worker variant: a fresh database per run, dropped after."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from urllib.parse import urlsplit

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def redis_ok(url: str = REDIS_URL) -> bool:
    """A PING answered with PONG (raw RESP, so the check needs no client library)."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


async def _execute(admin_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_database(admin_url: str = PG_ADMIN_URL) -> str:
    """Create an empty database; return its SQLAlchemy (asyncpg) URL."""
    name = f"runapi_bench_{int(time.time())}_{secrets.token_hex(3)}"
    asyncio.run(_execute(admin_url, f'CREATE DATABASE "{name}"'))
    root = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{root}/{name}"


def drop_database(database_url: str, admin_url: str = PG_ADMIN_URL) -> None:
    name = database_url.rsplit("/", 1)[1]
    asyncio.run(_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
