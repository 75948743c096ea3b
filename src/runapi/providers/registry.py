"""Provider registry: upstream name → adapter instance, built once from settings."""

from __future__ import annotations

from collections.abc import Callable

from runapi.catalog import ModelEntry
from runapi.errors import UpstreamNotConfigured
from runapi.providers.base import Provider
from runapi.settings import Settings, UpstreamSettings

ProviderFactory = Callable[[str, UpstreamSettings, Settings], Provider]

_FACTORIES: dict[str, ProviderFactory] = {}


def register_kind(kind: str) -> Callable[[ProviderFactory], ProviderFactory]:
    """Adapters register their kind here, so adding one never touches a dispatch `if` chain."""

    def wrap(factory: ProviderFactory) -> ProviderFactory:
        _FACTORIES[kind] = factory
        return factory

    return wrap


_HOW_TO_CONFIGURE = (
    "No upstream is configured for model '{model}' (upstream '{upstream}'). Set MINIMAX_API_KEY "
    "(and MINIMAX_BASE_URL, default https://api.minimax.io/v1), or add [upstreams.{upstream}] to "
    "your runapi.toml. For offline development run `runapi simulate` and set "
    "MINIMAX_BASE_URL=http://127.0.0.1:9100/v1 MINIMAX_API_KEY=sim."
)


class ProviderRegistry:
    def __init__(self, providers: dict[str, Provider]) -> None:
        self._providers = providers

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderRegistry:
        _load_builtin_adapters()
        upstreams = dict(settings.upstreams)
        # The embedded model needs no configuration: it is the offline default.
        upstreams.setdefault("local", UpstreamSettings(kind="local"))
        providers: dict[str, Provider] = {}
        for name, upstream in upstreams.items():
            if upstream.kind != "local" and not upstream.base_url and upstream.kind != "minimax":
                continue
            if upstream.kind == "minimax" and not (upstream.api_key or upstream.base_url):
                continue
            factory = _FACTORIES.get(upstream.kind)
            if factory is not None:
                providers[name] = factory(name, upstream, settings)
        return cls(providers)

    def for_model(self, model: ModelEntry) -> Provider:
        provider = self._providers.get(model.upstream)
        if provider is None:
            raise UpstreamNotConfigured(_HOW_TO_CONFIGURE.format(model=model.id, upstream=model.upstream))
        return provider

    def get(self, name: str) -> Provider | None:
        return self._providers.get(name)

    def names(self) -> list[str]:
        return list(self._providers)

    async def start(self) -> None:
        for provider in self._providers.values():
            await provider.start()

    async def close(self) -> None:
        for provider in self._providers.values():
            await provider.close()


def _load_builtin_adapters() -> None:
    # Imported for their `register_kind` side effect; kept here so the registry stays the one
    # place that knows which adapters ship with runapi.
    from runapi.providers import local, minimax, openai_compatible  # noqa: F401
