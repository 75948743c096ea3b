"""Stored responses: `GET`/`DELETE /v1/responses/{id}`, `.../input_items`, `.../cancel`.

A Response is a task seen through the Responses surface (runapi-contract §3.6): its state maps
from the task's, its final object is the stored body, and only `store: true` keeps its input.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import web

from runapi.api.common import presented_key, request_id, services
from runapi.canonical.codec import ResponseMeta
from runapi.errors import InvalidRequest, NotFound, RunapiError
from runapi.surfaces.openai_responses import ResponsesSurface
from runapi.tasks.history import ResponseHistory
from runapi.tasks.service import TaskRecord, Tasks

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def routes(surface: ResponsesSurface, tasks: Tasks, history: ResponseHistory) -> list[web.RouteDef]:
    def guarded(work: Callable[[web.Request, int], Awaitable[web.StreamResponse]]) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            rid = request_id(request)
            try:
                principal = await services(request).keys.authenticate(presented_key(request))
                return await work(request, principal.account_id)
            except RunapiError as exc:
                status, body, extra = surface.render_error(exc, rid)
                return web.Response(
                    body=body,
                    status=status,
                    content_type="application/json",
                    headers={"x-request-id": rid, **extra},
                )

        return handle

    async def load(request: web.Request, account_id: int) -> TaskRecord:
        ident = request.match_info["response_id"]
        try:
            record = await tasks.store.get(ident, account_id)
        except NotFound:
            raise NotFound(f"No response found with id '{ident}'.") from None
        if record.endpoint != "responses":
            raise NotFound(f"No response found with id '{ident}'.")
        return record

    def state_body(record: TaskRecord) -> bytes:
        if record.status == "completed" and record.response is not None and record.response.status == 200:
            return record.response.body
        meta = ResponseMeta(
            surface_id=record.surface_id,
            task_id=record.id,
            request_id="",
            model=record.model,
            created=int(record.created_at.timestamp()),
        )
        error = None
        if record.status == "failed":
            error = RunapiError(record.error or "The response failed.", code=record.error_code)
        return surface.render_state(meta, record.status, error=error)

    def json(body: bytes, request: web.Request) -> web.Response:
        return web.Response(
            body=body, content_type="application/json", headers={"x-request-id": request_id(request)}
        )

    async def retrieve(request: web.Request, account_id: int) -> web.StreamResponse:
        return json(state_body(await load(request, account_id)), request)

    async def remove(request: web.Request, account_id: int) -> web.StreamResponse:
        record = await load(request, account_id)
        await tasks.store.remove_output(record.id, account_id)
        await history.delete(record.id)
        return json(surface.render_deleted(record.surface_id), request)

    async def cancel(request: web.Request, account_id: int) -> web.StreamResponse:
        record = await load(request, account_id)
        if record.mode != "async":
            raise InvalidRequest("Only background responses can be cancelled.", param="response_id")
        return json(state_body(await tasks.cancel(record.id, account_id)), request)

    async def input_items(request: web.Request, account_id: int) -> web.StreamResponse:
        record = await load(request, account_id)
        messages = await history.load(record.id)
        if messages is None:
            raise NotFound(
                f"Input items of '{record.surface_id}' were not retained: this gateway keeps inputs only "
                "for responses created with `store: true`."
            )
        q = request.query
        order: Literal["asc", "desc"] = "asc" if q.get("order") == "asc" else "desc"
        limit = int(q["limit"]) if q.get("limit", "").isdigit() else 20
        # The listed history is the input of this turn: drop the assistant reply stored with it.
        turns = messages[:-1] if messages and messages[-1].role == "assistant" else messages
        items = surface.input_items(turns, record.surface_id)
        body = surface.render_input_items(
            items, after=q.get("after"), limit=max(1, min(100, limit)), order=order
        )
        return json(body, request)

    return [
        web.get("/v1/responses/{response_id}", guarded(retrieve)),
        web.delete("/v1/responses/{response_id}", guarded(remove)),
        web.post("/v1/responses/{response_id}/cancel", guarded(cancel)),
        web.get("/v1/responses/{response_id}/input_items", guarded(input_items)),
    ]
