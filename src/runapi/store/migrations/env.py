"""Alembic environment: runs on the connection the gateway hands over (see database.py)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from runapi.store.schema import metadata

config = context.config


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=True,  # SQLite needs batch mode for ALTERs
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    # `alembic revision --autogenerate` from the command line, against a sync URL.
    url = config.get_main_option("sqlalchemy.url") or "sqlite:///alembic-dev.db"
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
