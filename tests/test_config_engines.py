"""The Garmin engine settings: the engine of new logins, the DI strategies, the proxy."""

from __future__ import annotations

import pytest

from service.config import DI_STRATEGIES, ConfigError, load_config
from service.garmin.di.engine import STRATEGIES, strategies_for
from service.garmin.engine import GarminSettings


def test_new_logins_use_the_di_engine_with_pauses_by_default() -> None:
    config = load_config(path=None, env={})
    assert config.garmin.engine == "di"
    assert config.garmin.di_login_delays is True
    assert config.garmin.di_strategies == ()  # the domain's order (the DI engine's)
    assert config.garmin.proxy_url == ""


def test_the_configuration_knows_the_strategies_the_di_engine_knows() -> None:
    assert set(DI_STRATEGIES) == set(STRATEGIES)
    for domain in ("garmin.com", "garmin.cn"):
        assert sorted(strategies_for(GarminSettings(domain=domain))) == sorted(DI_STRATEGIES)


@pytest.mark.parametrize(("domain", "first"), [("garmin.com", "mobile+cffi"),
                                               ("garmin.cn", "portal+cffi")])
def test_the_default_strategies_follow_the_domain_and_a_configured_list_wins(
    domain: str, first: str
) -> None:
    """As ha-garmin's `GarminAuth.login`: garmin.cn's sign-in has no mobile endpoint, so
    the portal strategies come first there."""
    config = load_config(path=None, env={"GARMIN_SYNC_GARMIN_DOMAIN": domain})
    settings = GarminSettings(domain=domain, di_strategies=config.garmin.di_strategies)
    assert strategies_for(settings)[0] == first
    chosen = load_config(path=None, env={"GARMIN_SYNC_GARMIN_DOMAIN": domain,
                                         "GARMIN_SYNC_GARMIN_DI_STRATEGIES": "mobile+requests"})
    assert strategies_for(GarminSettings(
        domain=domain, di_strategies=chosen.garmin.di_strategies)) == ("mobile+requests",)


def test_engine_and_delays_come_from_the_environment() -> None:
    config = load_config(path=None, env={"GARMIN_SYNC_GARMIN_ENGINE": "GARTH",
                                         "GARMIN_SYNC_GARMIN_DI_LOGIN_DELAYS": "false",
                                         "GARMIN_SYNC_GARMIN_DI_STRATEGIES": "portal+cffi"})
    assert config.garmin.engine == "garth"
    assert config.garmin.di_login_delays is False
    assert config.garmin.di_strategies == ("portal+cffi",)


@pytest.mark.parametrize("bad", ["nope", "di,garth"])
def test_an_unknown_engine_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"garmin\.engine"):
        load_config(path=None, env={}, overrides={"garmin": {"engine": bad}})


@pytest.mark.parametrize("bad", [["mobile+curl"], ["mobile+cffi", "mobile+cffi"]])
def test_unknown_or_repeated_strategies_are_refused(bad: list[str]) -> None:
    with pytest.raises(ConfigError, match=r"garmin\.di_strategies"):
        load_config(path=None, env={}, overrides={"garmin": {"di_strategies": bad}})


def test_a_bad_proxy_url_is_refused_without_repeating_it() -> None:
    secret = "socks5://user:hunter2-secret@proxy:1080"
    with pytest.raises(ConfigError) as info:
        load_config(path=None, env={"GARMIN_SYNC_GARMIN_PROXY_URL": secret})
    assert "GARMIN_SYNC_GARMIN_PROXY_URL" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_the_proxy_url_stays_out_of_the_configuration_repr() -> None:
    url = "http://user:hunter2-secret@proxy:3128"
    config = load_config(path=None, env={"GARMIN_SYNC_GARMIN_PROXY_URL": url})
    assert config.garmin.proxy_url == url
    assert "hunter2" not in repr(config)
