"""Sign in with an API key (or the operator's admin key) and sign out.

The key is checked once, with the same repository the API uses, and is then forgotten: the cookie
holds a random session token (HttpOnly, SameSite=Strict, path `/console`). The sign-in form is
itself protected against login CSRF with a double-submit token (a cookie and a hidden field that
must match), since there is no session yet to tie a token to.
"""

from __future__ import annotations

from aiohttp import web

from runapi.api.common import services
from runapi.console.http import (
    COOKIE,
    PREFIX,
    check_origin,
    cookie_is_secure,
    current_session,
    forbidden,
    page,
    posted_form,
    redirect,
    secured,
)
from runapi.console.sessions import new_token, same_token
from runapi.console.state import console_state
from runapi.errors import AuthenticationFailed

__all__ = ["login", "login_form", "logout"]

LOGIN_COOKIE = "runapi_console_login"
_LOGIN_COOKIE_SECONDS = 3600
_MAX_KEY_CHARS = 512  # far above any key we issue or import


def _home(is_admin: bool) -> str:
    return f"{PREFIX}/admin" if is_admin else f"{PREFIX}/overview"


def _form(request: web.Request, token: str, error: str | None, status: int) -> web.Response:
    # The key field is never filled back in: a mistyped key is not echoed into the page.
    response = page(
        request, "login.html", {"title": "Sign in", "login_token": token, "error": error}, status=status
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=_LOGIN_COOKIE_SECONDS,
        path=PREFIX,
        httponly=True,
        samesite="Strict",
        secure=cookie_is_secure(request),
    )
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    if session is not None:
        return redirect(_home(session.is_admin))
    token = request.cookies.get(LOGIN_COOKIE) or new_token()
    return _form(request, token, None, 200)


async def login(request: web.Request) -> web.StreamResponse:
    expected = request.cookies.get(LOGIN_COOKIE)
    form = await request.post()
    presented = form.get("login_token")
    if (
        not check_origin(request)
        or not expected
        or not isinstance(presented, str)
        or not same_token(presented, expected)
    ):
        return _form(request, new_token(), "The form expired. Please sign in again.", 403)
    raw_key = form.get("key")
    secret = raw_key.strip() if isinstance(raw_key, str) else ""
    if not secret or len(secret) > _MAX_KEY_CHARS:
        return _form(request, expected, "Paste an API key to sign in.", 400)
    svc = services(request)
    state = console_state(request)
    admin_key = svc.settings.admin_key
    if admin_key and same_token(secret, admin_key):
        session = await state.sessions.open(None)
    else:
        try:
            principal = await svc.keys.authenticate(secret)
        except AuthenticationFailed:
            return _form(request, expected, "That key was not accepted. Check it and try again.", 401)
        session = await state.sessions.open(principal)
    # A fresh token at every sign-in (no session fixation); an older session of this browser ends.
    previous = request.cookies.get(COOKIE)
    if previous:
        await state.sessions.close(previous)
    response = redirect(_home(session.is_admin))
    response.set_cookie(
        COOKIE,
        session.token,
        max_age=int(state.sessions.ttl_seconds),
        path=PREFIX,
        httponly=True,
        samesite="Strict",
        secure=cookie_is_secure(request),
    )
    response.del_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    if session is None:
        response = redirect(f"{PREFIX}/login")
    else:
        if await posted_form(request, session) is None:
            return forbidden(request, session, "The sign-out form expired. Reload the page and try again.")
        await console_state(request).sessions.close(session.token)
        response = redirect(f"{PREFIX}/login")
    response.del_cookie(COOKIE, path=PREFIX)
    return secured(response)
