"""The long-lived parts the app builds once at startup and every handler shares.

Handlers reach them through `request.app[SERVICES]`; nothing is a module-level global.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from runapi.auth import AccountRepository, KeyRepository
from runapi.catalog import Catalog
from runapi.providers.registry import ProviderRegistry
from runapi.settings import Settings
from runapi.store.database import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    catalog: Catalog
    accounts: AccountRepository
    keys: KeyRepository
    providers: ProviderRegistry
    # Filled in by the app factory as the billing, limits and tasks packages are wired.
    extras: dict[str, Any] = field(default_factory=dict)


SERVICES: web.AppKey[Services] = web.AppKey("services", Services)
