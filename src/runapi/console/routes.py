"""The console's routes, all under `/console`; the app mounts them when `settings.console` is on."""

from __future__ import annotations

from aiohttp import web

from runapi.console.account_pages import limits, overview, task_json, tasks_page
from runapi.console.admin_page import admin_page
from runapi.console.http import PREFIX, current_session, redirect, secured
from runapi.console.models_page import models_page
from runapi.console.signin import login, login_form, logout
from runapi.console.state import console_state

__all__ = ["routes"]


async def home(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    if session is None:
        return redirect(f"{PREFIX}/login")
    return redirect(f"{PREFIX}/admin" if session.is_admin else f"{PREFIX}/overview")


async def static_file(request: web.Request) -> web.StreamResponse:
    """The console's CSS and JS, from memory; only the shipped file names exist (no paths)."""
    found = console_state(request).static.get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound()
    headers = {"ETag": found.etag, "Cache-Control": "public, max-age=3600"}
    if request.headers.get("If-None-Match") == found.etag:
        return secured(web.Response(status=304, headers=headers))
    response = web.Response(body=found.body, content_type=found.content_type, headers=headers)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def routes() -> list[web.RouteDef]:
    return [
        web.get(PREFIX, home),
        web.get(f"{PREFIX}/", home),
        web.get(f"{PREFIX}/login", login_form),
        web.post(f"{PREFIX}/login", login),
        web.post(f"{PREFIX}/logout", logout),
        web.get(f"{PREFIX}/overview", overview),
        web.get(f"{PREFIX}/tasks", tasks_page),
        web.get(PREFIX + "/tasks/{task_id}", task_json),
        web.get(f"{PREFIX}/models", models_page),
        web.get(f"{PREFIX}/limits", limits),
        web.get(f"{PREFIX}/admin", admin_page),
        web.get(PREFIX + "/static/{name}", static_file),
    ]
