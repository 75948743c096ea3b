"""Compose the full gateway: services, the pipeline's hooks and every route (floor 5)."""

from __future__ import annotations

from aiohttp import web

from runapi.app import build_app, build_services
from runapi.settings import Settings


def build_gateway(settings: Settings) -> web.Application:
    services = build_services(settings)
    return build_app(settings, services)
