"""Who may do what, without a database: when auth is on, the loopback-only rule with auth
off, the one table of roles, the form of keys, and masking residents' contacts."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from api import security
from api.errors import Forbidden
from geo.security import identity, keys, privacy
from geo.settings import load as load_settings


@pytest.mark.parametrize("setting, host, on", [
    (None, "127.0.0.1", False), (None, "localhost", False), (None, "::1", False), (None, "127.0.0.2", False),
    (None, "0.0.0.0", True), (None, "192.168.1.5", True), (None, "::", True), (None, None, True),
    ("on", "127.0.0.1", True), ("off", "127.0.0.1", False), ("OFF", "0.0.0.0", False),
])
def test_auth_is_off_by_default_only_on_loopback(setting, host, on):
    assert security.resolve_mode(load_settings(auth=setting).auth, host) is on


def _request(server_host: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/units", "headers": [],
                    "server": (server_host, 8000), "query_string": b""})


def test_with_auth_off_a_request_arriving_off_loopback_is_refused():
    security.configure(on=False)
    try:
        assert asyncio.run(security.identify(_request("127.0.0.1"))) is identity.ANONYMOUS
        with pytest.raises(Forbidden, match="loopback only"):
            asyncio.run(security.identify(_request("10.1.2.3")))
    finally:
        security.configure()


def test_roles_are_one_table_and_only_dispatchers_and_admins_see_contacts():
    assert identity.roles_with("contact") == ["dispatcher", "admin"]
    assert set(identity.ROLES["admin"]) == set(identity.PERMISSIONS)
    assert identity.Identity("cli:someone").can("contact")  # the command line holds every power
    assert not identity.Identity("key:1 x (service)", role="service").can("contact")


def test_a_new_key_has_the_documented_form_and_only_its_digest_is_kept():
    prefix, key = keys.new_key()
    assert keys.KEY_PATTERN.fullmatch(key) and keys.prefix_of(key) == prefix
    assert keys.digest(key) != key.encode() and len(keys.digest(key)) == 32
    assert keys.prefix_of("gm_nothex!_" + "a" * 43) is None


@pytest.mark.parametrize("given_, masked", [
    ("13812345678", "138****5678"),
    ("027-87654321", "027-****4321"),
    ("zhang.san@example.cn", "z***@example.cn"),
    ("张三 13812345678", "张* 138****5678"),
])
def test_contacts_are_masked_as_documented(given_, masked):
    assert privacy.mask_contact(given_) == masked


@given(st.from_regex(r"1[3-9]\d{9}", fullmatch=True), st.text(max_size=20))
def test_no_phone_number_survives_in_free_text(phone, words):
    masked = privacy.mask_text(f"{words} 请联系 {phone} 谢谢")
    assert phone not in masked


def test_the_viewer_decides_what_an_incident_shows():
    item = {"contact": "13812345678", "description": "call 13812345678", "events": [{"note": "13812345678"}]}
    service = identity.Identity("key:1 s (service)", role="service")
    dispatcher = identity.Identity("key:2 d (dispatcher)", role="dispatcher")
    assert privacy.incident_for(item, dispatcher) is item
    shown = privacy.incident_for(item, service)
    assert "13812345678" not in repr(shown)
    assert privacy.worker_for({"phone": "13812345678"}, service)["phone"] == "138****5678"
