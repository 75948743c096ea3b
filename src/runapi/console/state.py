"""What the console builds once per process: the template environment, the session store (the
sessions themselves live in the database, shared by every process), the static files (read into
memory at first use; they are a few kilobytes) and a task reader.

It lives in `Services.extras["console"]`, created on the first console request, because the console
contributes routes only (`routes()`), not startup hooks, and the app is frozen by then.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources

import jinja2
from aiohttp import web

from runapi.api.common import services
from runapi.api.tasks import TASKS_EXTRA
from runapi.console import display
from runapi.console.sessions import SessionStore
from runapi.tasks.facade import Tasks
from runapi.tasks.store import TaskStore

__all__ = ["CONSOLE_EXTRA", "ConsoleState", "StaticFile", "console_state", "task_store"]

CONSOLE_EXTRA = "console"  # Services.extras key of the ConsoleState
_STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("runapi.console", "templates"),
        # Every value is escaped unless a view marks it safe (only the charts, built and escaped
        # by `charts.py`).
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        usd_balance=display.usd_balance,
        usd_spend=display.usd_spend,
        usd_exact=display.usd_exact,
        per_1m=display.per_1m,
        count=display.count,
        utc_time=display.utc_time,
        utc_date=display.utc_date,
        iso_time=display.iso_time,
    )
    return env


def _static_files() -> dict[str, StaticFile]:
    out: dict[str, StaticFile] = {}
    for entry in resources.files("runapi.console").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if not entry.is_file() or suffix not in _STATIC_TYPES:
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        out[entry.name] = StaticFile(body, _STATIC_TYPES[suffix], etag)
    return out


@dataclass
class ConsoleState:
    sessions: SessionStore
    templates: jinja2.Environment = field(default_factory=_templates)
    static: dict[str, StaticFile] = field(default_factory=_static_files)
    reader: TaskStore | None = None  # used when the app wired no `Tasks`


def console_state(request: web.Request) -> ConsoleState:
    svc = services(request)
    state = svc.extras.get(CONSOLE_EXTRA)
    if not isinstance(state, ConsoleState):
        state = ConsoleState(sessions=SessionStore(svc.db))
        svc.extras[CONSOLE_EXTRA] = state
    return state


def task_store(request: web.Request) -> TaskStore:
    """The app's task store (its `list_tasks` sees tasks still in the write buffer); without one, a
    reader on the same database (it never starts a writer, so it only reads)."""
    svc = services(request)
    wired = getattr(svc, "tasks", None) or svc.extras.get(TASKS_EXTRA)
    if isinstance(wired, Tasks):
        return wired.store
    state = console_state(request)
    if state.reader is None:
        state.reader = TaskStore(svc.db, svc.settings)
    return state.reader
