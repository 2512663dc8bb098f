"""Every GRIDMAP_* setting read once into one typed object, with one truthy rule, and a bad
value named with its variable."""

from __future__ import annotations

import pytest

from geo import settings
from geo.coords.points import CHINA
from geo.errors import SetupError


def test_defaults_need_no_environment(monkeypatch):
    for name in ("DATABASE_URL", "GRIDMAP_AUTH", "GRIDMAP_BOUNDS", "GRIDMAP_TZ", "GRIDMAP_PG_PORT"):
        monkeypatch.delenv(name, raising=False)
    s = settings.load()
    assert s.database_url is None and s.auth is None and s.bounds == CHINA and s.tz == "Asia/Shanghai"
    assert (s.pg_port, s.auth_cache_seconds, s.session_hours, s.max_body_mb, s.db_wait) == (54329, 30, 12, 8, 3)


@pytest.mark.parametrize("text, value", [
    ("on", True), ("ON", True), ("1", True), ("true", True), ("yes", True),
    ("off", False), ("Off", False), ("0", False), ("false", False), ("no", False),
])
def test_one_truthy_rule_for_every_yes_no_setting(monkeypatch, text, value):
    monkeypatch.setenv("GRIDMAP_AUTH", text)
    monkeypatch.setenv("GRIDMAP_COOKIE_SECURE", text)
    s = settings.load()
    assert s.auth is value and s.cookie_secure is value


@pytest.mark.parametrize("name, text, words", [
    ("GRIDMAP_AUTH", "maybe", "use on or off"),
    ("GRIDMAP_BOUNDS", "100,20,120", "minlon,minlat,maxlon,maxlat"),
    ("GRIDMAP_PG_PORT", "70000", "GRIDMAP_PG_PORT='70000'"),
    ("GRIDMAP_SECRET", "short", "at least 32 characters"),
    ("GRIDMAP_MAX_BODY_MB", "lots", "GRIDMAP_MAX_BODY_MB='lots'"),
])
def test_a_bad_value_is_named_with_its_variable(monkeypatch, name, text, words):
    monkeypatch.setenv(name, text)
    with pytest.raises(SetupError, match=name) as refused:
        settings.load()
    assert words in str(refused.value)


def test_an_empty_variable_counts_as_unset_and_bounds_parse(monkeypatch):
    monkeypatch.setenv("GRIDMAP_AUTH", "")
    monkeypatch.setenv("GRIDMAP_BOUNDS", " 100, 20 ,120,40 ")
    s = settings.load()
    assert s.auth is None and s.bounds == (100.0, 20.0, 120.0, 40.0)


def test_read_once_until_reset(monkeypatch):
    monkeypatch.setenv("GRIDMAP_TZ", "Asia/Urumqi")
    settings.reset()
    assert settings.get().tz == "Asia/Urumqi"
    monkeypatch.setenv("GRIDMAP_TZ", "UTC")
    assert settings.get().tz == "Asia/Urumqi"
    settings.reset()
    assert settings.get().tz == "UTC"
