"""Callback URL rules (runapi-contract §4.5). IP literals and refused names only: no real DNS."""

from __future__ import annotations

import pytest

from runapi.errors import InvalidRequest
from runapi.settings import WebhookSettings
from runapi.tasks.webhooks.ssrf import check_callback_url, validate_callback_url

STRICT = WebhookSettings()
DEV = WebhookSettings(allow_http=True, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.5/hook",  # private
        "https://172.16.3.4/hook",
        "https://192.168.1.1/hook",
        "https://127.0.0.1/hook",  # loopback
        "https://127.8.9.10:8443/hook",
        "https://[::1]/hook",
        "https://169.254.169.254/latest/meta-data",  # link-local, the metadata address
        "https://[fe80::1]/hook",
        "https://100.64.1.1/hook",  # CGNAT
        "https://0.0.0.0/hook",  # unspecified
        "https://[::]/hook",
        "https://224.0.0.1/hook",  # multicast
        "https://255.255.255.255/hook",  # broadcast
        "https://[fc00::1]/hook",  # unique local
        "https://[::ffff:127.0.0.1]/hook",  # IPv4-mapped IPv6
        "https://[::ffff:169.254.169.254]/hook",
        "https://[2002:a00:1::]/hook",  # 6to4 wrapping 10.0.0.1
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://METADATA.google.internal./x",
        "https://localhost/hook",
        "https://api.localhost/hook",
        "http://8.8.8.8/hook",  # http needs allow_http
        "ftp://8.8.8.8/hook",
        "/relative/hook",
        "https:///nohost",
        "https://8.8.8.8/" + "a" * 2048,  # longer than 2048
    ],
)
async def test_refused(url: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        await validate_callback_url(url, STRICT)
    assert info.value.code == "invalid_callback_url"
    assert info.value.param == "callback_url"
    assert info.value.status == 400


@pytest.mark.parametrize(
    "url",
    ["https://8.8.8.8/hook", "https://93.184.215.14:8443/a/b?c=d", "https://[2606:4700:4700::1111]/hook"],
)
async def test_public_literals_accepted(url: str) -> None:
    await validate_callback_url(url, STRICT)


async def test_operator_can_allow_loopback_and_http() -> None:
    await validate_callback_url("http://127.0.0.1:8080/hook", DEV)
    await validate_callback_url("http://localhost:8080/hook", DEV)
    with pytest.raises(InvalidRequest):  # metadata names stay refused
        await validate_callback_url("http://metadata.google.internal/", DEV)


def test_sync_check_refuses_literals_and_names_without_dns() -> None:
    with pytest.raises(InvalidRequest):
        check_callback_url("https://[::ffff:10.0.0.1]/hook", STRICT)
    with pytest.raises(InvalidRequest):
        check_callback_url("https://metadata.google.internal/", STRICT)
    check_callback_url("https://8.8.4.4/hook", STRICT)
    check_callback_url("https://hooks.example.com/x", STRICT)  # names are resolved later
