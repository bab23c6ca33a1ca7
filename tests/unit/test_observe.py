"""What a build saw: comparing two builds' observations, refusing a reachable network."""

from __future__ import annotations

import pytest

from kiln import observe
from kiln.errors import BuildError
from kiln.recipe import VARIATIONS

FIRST = {"umask": "022", "hostname": "kiln", "clock_offset_days": "0", "cpus": "2",
         "network": "off: … out of reach (Connection refused)"}


def test_every_variation_has_an_observation_that_shows_it():
    assert set(observe.SHOWS) == set(VARIATIONS)
    for key in observe.SHOWS.values():
        assert f'seen["{key}"]' in observe.PROBE, key


def test_a_variation_is_applied_only_when_the_two_builds_saw_different_values():
    second = {**FIRST, "umask": "002", "clock_offset_days": "397"}
    seen, alike = observe.compare(FIRST, second, ("umask", "time", "hostname"))
    assert seen == {"umask": ["022", "002"], "time": ["0", "397"]}
    assert alike == ["hostname"]


def test_without_the_first_builds_observations_nothing_is_claimed():
    seen, alike = observe.compare(None, FIRST, ("umask",))
    assert (seen, alike) == ({}, [])


def test_a_build_that_reached_the_listener_is_refused(monkeypatch):
    monkeypatch.delenv(observe.ALLOW_NETWORK, raising=False)
    observe.check_network(FIRST, "demo 1.0")  # off: fine
    on = {**FIRST, "network": "on: it reached a listener kiln holds on the host's loopback"}
    with pytest.raises(BuildError, match="network is not off") as caught:
        observe.check_network(on, "demo 1.0")
    assert "bubblewrap" in (caught.value.hint or "")
    monkeypatch.setenv(observe.ALLOW_NETWORK, "1")
    observe.check_network(on, "demo 1.0")  # asked for: built, and the record says "on"
    assert observe.sandbox_text(on, "off (bwrap)").startswith("on: ")


def test_the_listener_is_reachable_from_this_process():
    import socket

    with observe.listener() as port, socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
