"""SSRF rules for callback URLs (runapi-contract §4.5): checked at submission and on every attempt.

The delivery session resolves names through `CheckingResolver`, so the addresses that were checked
are the addresses connected to: a DNS change between check and connect cannot redirect the request,
and the original host name still goes into `Host` and SNI.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from runapi.errors import InvalidRequest
from runapi.settings import WebhookSettings

MAX_URL_LENGTH = 2048

# Cloud metadata endpoints by name; never a webhook receiver, whatever the operator allows.
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "100-100-100-200.metadata",
    }
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _invalid(message: str) -> InvalidRequest:
    return InvalidRequest(message, param="callback_url", code="invalid_callback_url")


def address_problem(address: IPAddress) -> str | None:
    """Why a resolved address is not a public unicast one, or None when it is. IPv4 embedded in
    IPv6 (mapped, 6to4, Teredo) is judged by the IPv4 address it carries."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            return address_problem(embedded)
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "shared (CGNAT)"
    if address.is_private:
        return "private"
    if address.is_reserved or not address.is_global:
        return "reserved"
    return None


def _host_of(url: str, settings: WebhookSettings) -> tuple[str, int]:
    """Static checks (no DNS): scheme, length, form, metadata names. Returns (host, port)."""
    if len(url) > MAX_URL_LENGTH:
        raise _invalid(f"callback_url is longer than {MAX_URL_LENGTH} characters.")
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise _invalid("callback_url is not a valid URL.") from exc
    allowed = ("https", "http") if settings.allow_http else ("https",)
    if parsed.scheme not in allowed:
        raise _invalid("callback_url must be an https URL.")
    host = (parsed.host or "").rstrip(".").lower()
    if not parsed.is_absolute() or not host:
        raise _invalid("callback_url must be an absolute URL with a host.")
    if host in METADATA_HOSTS:
        raise _invalid("callback_url points at a cloud metadata service.")
    if not settings.allow_private and (host == "localhost" or host.endswith(".localhost")):
        raise _invalid("callback_url points at a loopback address.")
    return host, parsed.port or (443 if parsed.scheme == "https" else 80)


def _check_addresses(addresses: list[str], settings: WebhookSettings) -> None:
    if settings.allow_private:
        return
    for text in addresses:
        problem = address_problem(ipaddress.ip_address(text.split("%", 1)[0]))
        if problem is not None:
            raise _invalid(f"callback_url resolves to a {problem} address, which is not allowed.")


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_callback_url(url: str, settings: WebhookSettings) -> None:
    """The checks that need no DNS (scheme, length, form, metadata names, IP literals); for a sync
    caller. Submission should prefer `validate_callback_url`, which also resolves host names."""
    host, _ = _host_of(url, settings)
    literal = _literal(host)
    if literal is not None:
        _check_addresses([str(literal)], settings)


async def validate_callback_url(url: str, settings: WebhookSettings, *, resolve: bool = True) -> None:
    """Raise `InvalidRequest(code="invalid_callback_url", param="callback_url")` unless `url` is an
    absolute https URL (http only with `allow_http`), ≤ 2048 chars, whose host is not a metadata
    name and is, or resolves only to, public addresses (`allow_private` lifts the address rule).
    With `resolve=False` host names are not looked up (delivery resolves through the checking
    resolver instead)."""
    host, port = _host_of(url, settings)
    literal = _literal(host)
    if literal is not None:
        _check_addresses([str(literal)], settings)
        return
    if not resolve or settings.allow_private:
        return
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise _invalid(f"callback_url host {host!r} does not resolve.") from exc
    _check_addresses([str(info[4][0]) for info in infos], settings)


class CheckingResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then refuses the connection when any address is
    not allowed. The connector connects only to the addresses returned here (pinning)."""

    def __init__(self, settings: WebhookSettings, inner: AbstractResolver | None = None) -> None:
        self.settings = settings
        self.inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        try:
            _check_addresses([r["host"] for r in results], self.settings)
        except InvalidRequest as exc:
            raise OSError(exc.message) from exc
        return results

    async def close(self) -> None:
        await self.inner.close()
