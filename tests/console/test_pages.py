"""The console over a real aiohttp server, a real database, real accounts, keys and ledger."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from html import unescape

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import insert, update

from runapi import console
from runapi.auth import AccountRepository, KeyRepository
from runapi.catalog import Catalog
from runapi.console.account_pages import CHART_MODELS, OTHER, TASKS_PER_PAGE, usage_series
from runapi.console.charts import Series, line_chart
from runapi.console.reports import ModelDay, window
from runapi.services import SERVICES
from runapi.store.database import Database
from runapi.store.schema import api_keys, webhook_stopped_urls

from .conftest import ADMIN_KEY, Console, build_services, csrf_token, login_token, sign_in

SVG = re.compile(r"<svg .*?</svg>", re.S)
NS = "{http://www.w3.org/2000/svg}"


def charts_in(html: str) -> list[ET.Element]:
    return [ET.fromstring(s) for s in SVG.findall(html)]


async def test_sign_in_with_a_key_shows_the_overview(app: Console) -> None:
    ada = await app.account("Ada", usd=10)
    await app.task(ada, days_ago=1, output_tokens=500)
    await app.task(ada, model="MiniMax-M2.5-highspeed", days_ago=3)
    browser = await app.client()
    r = await sign_in(browser, ada.secret)
    assert r.status == 200
    assert r.url.path == "/console/overview"
    assert [h.status for h in r.history] == [303]
    cookie = r.history[0].headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/console" in cookie
    assert ada.secret not in cookie
    html = await r.text()
    assert ada.secret not in html
    assert "Ada" in html
    # $10 credited minus two small charges: available truncates toward zero.
    assert "$9.99" in html
    svgs = charts_in(html)
    assert len(svgs) == 3
    spend = svgs[0]
    assert len([c for c in spend.iter(f"{NS}circle") if c.get("class") == "point"]) == 30
    requests = svgs[1]
    bars = [b for b in requests.iter(f"{NS}rect") if b.get("class") == "bar"]
    assert len(bars) == 30 * 2  # two models, thirty days
    assert "MiniMax-M2.5-highspeed" in html
    assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["X-Frame-Options"] == "DENY"


async def test_a_wrong_key_is_refused_and_not_echoed(app: Console) -> None:
    browser = await app.client()
    r = await sign_in(browser, "sk-ra-not-a-real-key")
    assert r.status == 401
    html = await r.text()
    assert "not accepted" in html
    assert "sk-ra-not-a-real-key" not in html
    assert "runapi_console=" not in r.headers.get("Set-Cookie", "")
    r = await browser.get("/console/overview", allow_redirects=False)
    assert r.status == 303
    assert r.headers["Location"] == "/console/login"


async def test_the_sign_in_form_needs_its_own_token(app: Console) -> None:
    ada = await app.account("Ada")
    browser = await app.client()
    # No form token (a cross-site form, or a script posting blind): refused even with a good key.
    r = await browser.post("/console/login", data={"key": ada.secret}, allow_redirects=False)
    assert r.status == 403
    # A token that does not match the cookie.
    await browser.get("/console/login")
    r = await browser.post("/console/login", data={"key": ada.secret, "login_token": "forged"})
    assert r.status == 403
    # A foreign Origin.
    form = await browser.get("/console/login")
    token = login_token(await form.text())
    r = await browser.post(
        "/console/login",
        data={"key": ada.secret, "login_token": token},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status == 403


async def test_sign_out_needs_the_csrf_token_and_ends_the_session(app: Console) -> None:
    ada = await app.account("Ada")
    browser = await app.client()
    r = await sign_in(browser, ada.secret)
    csrf = csrf_token(await r.text())
    r = await browser.post("/console/logout", data={"csrf": "wrong"}, allow_redirects=False)
    assert r.status == 403
    assert (await browser.get("/console/overview", allow_redirects=False)).status == 200
    r = await browser.post("/console/logout", data={"csrf": csrf}, allow_redirects=False)
    assert r.status == 303
    assert r.headers["Location"] == "/console/login"
    assert "runapi_console=" in r.headers["Set-Cookie"]  # cleared
    r = await browser.get("/console/overview", allow_redirects=False)
    assert r.status == 303
    assert r.headers["Location"] == "/console/login"
    # Sign-out is POST only: a link or an image tag cannot end a session.
    assert (await browser.get("/console/logout")).status == 405


async def test_pages_need_a_session(app: Console) -> None:
    browser = await app.client()
    for path in ("/console", "/console/overview", "/console/tasks", "/console/models", "/console/limits"):
        r = await browser.get(path, allow_redirects=False)
        assert r.status == 303, path
        assert r.headers["Location"] == "/console/login"
    r = await browser.get("/console/admin", allow_redirects=False)
    assert r.status == 303
    # A forged cookie is no session.
    browser.session.cookie_jar.update_cookies({"runapi_console": "made-up"})
    assert (await browser.get("/console/overview", allow_redirects=False)).status == 303


async def test_tasks_are_listed_per_account_without_bodies(app: Console) -> None:
    ada = await app.account("Ada")
    bob = await app.account("Bob")
    ada_task = await app.task(ada, body='{"choices":[{"message":{"content":"ADA-SECRET-OUTPUT"}}]}')
    bob_task = await app.task(bob, body='{"choices":[{"message":{"content":"BOB-SECRET-OUTPUT"}}]}')

    ada_browser = await app.client()
    await sign_in(ada_browser, ada.secret)
    html = await (await ada_browser.get("/console/tasks")).text()
    assert ada_task in html
    assert bob_task not in html
    assert "SECRET-OUTPUT" not in html  # list pages never show response bodies
    assert f'href="/console/tasks/{ada_task}"' in html

    # The task object, for the session's account only.
    r = await ada_browser.get(f"/console/tasks/{ada_task}")
    assert r.status == 200
    body = await r.json()
    assert body["id"] == ada_task
    assert body["object"] == "task"
    r = await ada_browser.get(f"/console/tasks/{bob_task}")
    assert r.status == 404
    assert "BOB" not in await r.text()

    bob_browser = await app.client()
    await sign_in(bob_browser, bob.secret)
    html = await (await bob_browser.get("/console/tasks")).text()
    assert bob_task in html
    assert ada_task not in html
    overview = await (await bob_browser.get("/console/overview")).text()
    assert "Bob" in overview
    assert ">Ada<" not in overview


async def test_tasks_page_names_the_callback_urls_no_longer_called(app: Console) -> None:
    ada = await app.account("Ada")
    bob = await app.account("Bob")
    browser = await app.client()
    await sign_in(browser, ada.secret)
    assert "Webhooks not being delivered" not in await (await browser.get("/console/tasks")).text()

    stopped = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    async with app.db.begin() as conn:
        await conn.execute(
            insert(webhook_stopped_urls),
            [
                {
                    "api_key_id": ada.key_id,
                    "url": "https://ada.example/gone",
                    "stopped_at": stopped,
                    "reason": "gone",
                },
                {
                    "api_key_id": ada.key_id,
                    "url": "https://ada.example/down",
                    "stopped_at": stopped,
                    "reason": "paused",
                },
                {
                    "api_key_id": bob.key_id,
                    "url": "https://bob.example/hook",
                    "stopped_at": stopped,
                    "reason": "gone",
                },
            ],
        )
    html = unescape(await (await browser.get("/console/tasks")).text())
    assert "Webhooks not being delivered" in html
    assert "https://ada.example/gone" in html
    assert "answered 410 Gone" in html
    assert "https://ada.example/down" in html
    assert "paused: it failed without a break" in html
    assert "2026-11-20" in html
    assert "bob.example" not in html  # another account's


async def test_tasks_page_by_cursor_and_filters(app: Console) -> None:
    ada = await app.account("Ada", usd=50)
    ids = [await app.task(ada, output_tokens=10) for _ in range(TASKS_PER_PAGE + 3)]
    other = await app.task(ada, model="MiniMax-M2.1", status="failed")
    browser = await app.client()
    await sign_in(browser, ada.secret)
    first = await (await browser.get("/console/tasks")).text()
    shown = set(re.findall(r"/console/tasks/(task_\w+)", first))
    assert len(shown) == TASKS_PER_PAGE
    assert other in shown  # newest first
    found = re.search(r'href="(/console/tasks\?after=[^"]+)"', first)
    assert found is not None
    second = await (await browser.get(unescape(found.group(1)))).text()
    rest = set(re.findall(r"/console/tasks/(task_\w+)", second))
    assert shown | rest == {*ids, other}
    assert not shown & rest
    assert "Older" not in second
    assert "Newest" in second

    failed = await (await browser.get("/console/tasks?status=failed")).text()
    assert set(re.findall(r"/console/tasks/(task_\w+)", failed)) == {other}
    by_model = await (await browser.get("/console/tasks?model=MiniMax-M2.1")).text()
    assert set(re.findall(r"/console/tasks/(task_\w+)", by_model)) == {other}
    # An unknown status is ignored rather than an error page.
    assert (await browser.get("/console/tasks?status=<x>")).status == 200


async def test_models_page_compares_every_variant(app: Console, catalog: Catalog) -> None:
    ada = await app.account("Ada")
    browser = await app.client()
    await sign_in(browser, ada.secret)
    r = await browser.get("/console/models")
    html = await r.text()
    offered = [m for m in catalog if m.status != "disabled"]
    for model in offered:
        assert f"<code>{model.id}</code>" in html
    price, speed = charts_in(html)
    assert len([b for b in price.iter(f"{NS}rect") if b.get("class") == "bar"]) == len(offered)
    rated = [m for m in offered if m.tokens_per_second is not None]
    assert len([b for b in speed.iter(f"{NS}rect") if b.get("class") == "bar"]) == len(rated)
    assert "$0.375" in html  # cache-write price, exact
    assert "204,800" in html


async def test_limits_page_shows_the_tier_and_class_limits(app: Console) -> None:
    ada = await app.account("Ada", usd=10)  # $10 paid: enough for tier 1 at once
    browser = await app.client()
    await sign_in(browser, ada.secret)
    html = await (await browser.get("/console/limits")).text()
    assert "Tier 1" in html
    assert "standard" in html
    assert "highspeed" in html
    assert "MiniMax-M2.7" in html
    # Operator overrides lower the key's values, and the page says so.
    async with app.db.begin() as conn:
        await conn.execute(
            update(api_keys).where(api_keys.c.id == ada.key_id).values(limit_overrides={"*": {"rpm": 3}})
        )
    html = await (await browser.get("/console/limits")).text()
    assert "lowered for this key" in html
    assert re.search(r'<td class="num">3</td>', html)


async def test_admin_page_needs_the_admin_key(app: Console) -> None:
    ada = await app.account("Ada <script>alert(1)</script>", usd=7)
    await app.task(ada, model="MiniMax-M2.5-highspeed", output_tokens=1000)
    await app.task(ada, output_tokens=100)

    user = await app.client()
    await sign_in(user, ada.secret)
    r = await user.get("/console/admin")
    assert r.status == 403
    assert "admin key" in await r.text()

    operator = await app.client()
    r = await sign_in(operator, ADMIN_KEY)
    assert r.url.path == "/console/admin"
    html = await r.text()
    assert ADMIN_KEY not in html
    assert "<script>alert(1)</script>" not in html
    assert "Ada &lt;script&gt;alert(1)&lt;/script&gt;" in html
    spend, top = charts_in(html)
    assert [t.text for t in top.iter(f"{NS}text") if t.text and t.text.startswith("MiniMax")] == [
        "MiniMax-M2.5-highspeed",
        "MiniMax-M2.7",
    ]
    assert "$6.99" in html  # $7 minus two small charges, truncated to the cent
    # The operator has no account pages; the limits page shows the whole tier table.
    r = await operator.get("/console/overview", allow_redirects=False)
    assert r.headers["Location"] == "/console/admin"
    html = await (await operator.get("/console/limits")).text()
    assert "Tier table" in html
    assert "Enterprise" in html
    assert len(spend.findall(f".//{NS}circle")) == 30


async def test_a_revoked_key_ends_its_session(app: Console) -> None:
    ada = await app.account("Ada")
    browser = await app.client()
    await sign_in(browser, ada.secret)
    assert (await browser.get("/console/overview", allow_redirects=False)).status == 200
    await KeyRepository(app.db).revoke(ada.key_id)
    r = await browser.get("/console/overview", allow_redirects=False)
    assert r.status == 303
    assert r.headers["Location"] == "/console/login"


async def test_static_files(app: Console) -> None:
    browser = await app.client()
    r = await browser.get("/console/static/console.css")
    assert r.status == 200
    assert r.content_type == "text/css"
    etag = r.headers["ETag"]
    r = await browser.get("/console/static/console.css", headers={"If-None-Match": etag})
    assert r.status == 304
    r = await browser.get("/console/static/console.js")
    assert r.status == 200
    assert r.content_type == "text/javascript"
    for name in ("missing.css", "..%2Fhttp.py", "..%2F__init__.py"):
        assert (await browser.get(f"/console/static/{name}")).status == 404


async def test_pages_fetch_nothing_from_other_origins(app: Console) -> None:
    ada = await app.account("Ada")
    await app.task(ada)
    browser = await app.client()
    await sign_in(browser, ada.secret)
    for path in ("/console/overview", "/console/tasks", "/console/models", "/console/limits"):
        html = await (await browser.get(path)).text()
        assert not re.search(r'(src|href)="(https?:)?//', html), path
        assert "<script>" not in html  # scripts only from /console/static
        assert "style=" not in html  # the CSP allows no inline styles


async def test_overview_without_a_wired_ledger_reads_the_account(db: Database, catalog: Catalog) -> None:
    """Before the app wires billing, the overview still shows the account's figures."""
    application = web.Application()
    application[SERVICES] = build_services(db, catalog, ledger=None)
    application.add_routes(console.routes())
    harness_server = TestServer(application)
    await harness_server.start_server()
    try:
        account = await AccountRepository(db).create("Solo")
        key = await KeyRepository(db).create(account.id)
        async with TestClient(harness_server) as browser:
            r = await sign_in(browser, key.secret)
            html = await r.text()
            assert r.status == 200
            assert "Solo" in html
            assert "$0.00" in html
            assert len(charts_in(html)) == 3
            assert "No requests in the last 30 days" in html
    finally:
        await harness_server.close()


def test_chart_markup_is_what_the_pages_embed() -> None:
    """The page regex above finds whole charts: one `<svg` … `</svg>` per chart."""
    svg = line_chart(["a"], [Series("s", [1])], title="t")
    assert SVG.findall(svg) == [svg]


def test_models_beyond_the_chart_limit_share_one_series() -> None:
    days = window(datetime(2026, 4, 2, tzinfo=UTC), 2)
    models = [f"m{i}" for i in range(CHART_MODELS + 2)]
    usage = [
        ModelDay(day=days[1], model=m, requests=1, input_tokens=10, output_tokens=5, cost_micros=1)
        for m in models
    ]
    usage.append(
        ModelDay(day=days[0], model="m0", requests=3, input_tokens=0, output_tokens=0, cost_micros=0)
    )
    series = usage_series(usage, days, models, "requests")
    assert [s.name for s in series] == [*models[:CHART_MODELS], OTHER]
    assert list(series[0].values) == [3, 1]
    assert list(series[-1].values) == [0, 2]  # the two models past the limit
    tokens = usage_series(usage, days, models, "tokens")
    assert list(tokens[1].values) == [0, 15]
