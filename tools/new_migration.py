"""Generate an Alembic revision from `runapi.store.schema` (developer tool).

.venv/bin/python tools/new_migration.py "add something"
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from runapi.store.database import alembic_config


def main() -> None:
    message = sys.argv[1] if len(sys.argv) > 1 else "schema change"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = alembic_config()
        cfg.set_main_option("sqlalchemy.url", f"sqlite:///{Path(tmp) / 'dev.db'}")
        command.upgrade(cfg, "head")
        command.revision(cfg, message=message, autogenerate=True)


if __name__ == "__main__":
    main()
