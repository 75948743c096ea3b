"""Console HTTP plumbing: rendering pages with strict headers, the session guard, CSRF checks.

Every console response carries a Content-Security-Policy that allows nothing but this origin's
own styles and scripts (no inline script, no network fetches from scripts, no framing), and pages
with account data are never cached.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from markupsafe import Markup

from runapi.api.common import services
from runapi.console.reports import key_state
from runapi.console.sessions import ConsoleSession, same_token
from runapi.console.state import console_state

__all__ = [
    "COOKIE",
    "PREFIX",
    "PageHandler",
    "check_origin",
    "current_session",
    "page",
    "redirect",
    "signed_in",
    "svg",
]

PREFIX = "/console"
COOKIE = "runapi_console"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

PageHandler = Callable[[web.Request, ConsoleSession], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def secured(response: web.StreamResponse) -> web.StreamResponse:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def svg(markup: str) -> Markup:
    """A chart from `charts.py` (which escapes every label itself) marked safe for a template."""
    return Markup(markup)


def page(
    request: web.Request,
    template: str,
    context: Mapping[str, Any],
    *,
    session: ConsoleSession | None = None,
    status: int = 200,
) -> web.Response:
    env = console_state(request).templates
    html = env.get_template(template).render(
        session=session,
        prefix=PREFIX,
        path=request.path,
        admin_enabled=bool(services(request).settings.admin_key),
        **context,
    )
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    secured(response)
    return response


def redirect(location: str) -> web.Response:
    """303 See Other: after a POST the browser follows with a GET."""
    response = web.Response(status=303, headers={"Location": location})
    secured(response)
    return response


def cookie_is_secure(request: web.Request) -> bool:
    public = services(request).settings.public_base_url or ""
    return request.secure or public.startswith("https://")


def check_origin(request: web.Request) -> bool:
    """A POST must come from a console page: when the browser names the page's origin, its host
    must be ours. (SameSite=Strict cookies and the form token are the main defence; this is a
    cheap third one.)"""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not every browser sends it on a same-origin form post
    if origin == "null":
        return False  # a sandboxed frame or a redirect chain from elsewhere
    host = urlsplit(origin).netloc
    public = urlsplit(services(request).settings.public_base_url or "").netloc
    return host == request.host or (bool(public) and host == public)


async def current_session(request: web.Request) -> ConsoleSession | None:
    """The caller's session, or None. A session of a key revoked since sign-in ends here."""
    state = console_state(request)
    session = await state.sessions.get(request.cookies.get(COOKIE))
    if session is None or session.principal is None:
        return session
    key = await key_state(services(request).db, session.principal.key_id)
    if key is None or key.revoked:
        await state.sessions.close_key(session.principal.key_id)
        return None
    return session


def signed_in(handler: PageHandler) -> Handler:
    """The page needs a session; without one the browser goes to the sign-in form."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        session = await current_session(request)
        if session is None:
            return redirect(f"{PREFIX}/login")
        return secured(await handler(request, session))

    return wrapped


def forbidden(request: web.Request, session: ConsoleSession | None, message: str) -> web.Response:
    return page(
        request, "error.html", {"title": "Not allowed", "message": message}, session=session, status=403
    )


async def posted_form(request: web.Request, session: ConsoleSession) -> Mapping[str, str] | None:
    """The fields of a console form POST, or None when its origin or CSRF token is wrong."""
    if not check_origin(request):
        return None
    form = await request.post()
    token = form.get("csrf")
    if not isinstance(token, str) or not same_token(token, session.csrf):
        return None
    return {k: v for k, v in form.items() if isinstance(v, str)}
