"""`voicevibe doctor`'s OSC rows: a probe datagram to each target; on a Mac (platform faked) a send refused for
want of the Local Network permission says where to allow it, elsewhere the errno's own words and a network fix."""

from __future__ import annotations

import errno
import os

import pytest

from support.osc import SlowLookup, free_port, refusing_connect
from voicevibe import macos
from voicevibe.config_files import load_config
from voicevibe.doctor import checks, network
from voicevibe.osc_targets import connect_udp
from voicevibe.testing.peer import OscPeer


def no_wait(seconds: float) -> None:
    """The pause between the two probes, skipped where no refusal is expected."""


@pytest.mark.parametrize("mac", [True, False])
def test_a_listening_target_receives_the_probe(mac: bool) -> None:
    with OscPeer() as peer:
        (row,) = network.check_targets(f"127.0.0.1:{peer.port}", mac=mac, connect=connect_udp)
        assert [m.params for m in peer.wait_for("/voicevibe/doctor", 2)] == [["probe"], ["probe"]]
    assert row.ok and f"127.0.0.1:{peer.port} resolves and takes a probe datagram" in row.detail
    assert ("open VoiceVibe.app once" in row.detail) == mac  # a terminal is exempt: the app must ask


def test_a_target_where_nothing_listens_is_reachable_and_says_so() -> None:
    port = free_port()
    (row,) = network.check_targets(f"127.0.0.1:{port}", mac=False, connect=connect_udp)
    assert row.ok and "nothing listens there yet" in row.detail  # the kernel's ICMP refusal of the first probe


@pytest.mark.parametrize("number", [errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EPERM])
def test_a_refused_probe_on_a_mac_says_allow_local_network(number: int) -> None:
    (row,) = network.check_targets("192.168.1.30:7000", mac=True, connect=refusing_connect(number), wait=no_wait)
    assert not row.ok and row.needed
    assert os.strerror(number) in row.detail and "192.168.1.30:7000" in row.detail
    assert row.fix.startswith("allow VoiceVibe in System Settings > Privacy & Security > Local Network")


@pytest.mark.parametrize("number", [errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EPERM])
def test_a_refused_probe_elsewhere_keeps_the_errno_and_names_the_network(number: int) -> None:
    (row,) = network.check_targets("192.168.1.30:7000", mac=False, connect=refusing_connect(number), wait=no_wait)
    assert not row.ok and os.strerror(number) in row.detail
    assert "Local Network" not in row.fix and "network" in row.fix


def test_a_name_that_never_answers_fails_in_bounded_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(network, "LOOKUP_SECONDS", 0.2)
    lookup = SlowLookup("render-pc.local", free_port())  # waits on its gate, which is never set
    row, other = network.check_targets("render-pc.local:7000, 127.0.0.1:7001", mac=True, connect=lookup, wait=no_wait)
    assert not row.ok and "did not resolve within 0.2 s" in row.detail and "IP address" in row.fix
    assert other.ok  # the next target is still checked
    lookup.gate.set()


def test_doctor_runs_the_probe_through_its_probe_and_platform(tmp_path) -> None:
    config = load_config(overrides=[{"osc": {"targets": "192.168.1.30:7000, 192.168.1.31:7000"},
                                     "session": {"log_dir": str(tmp_path)}}], include_defaults_files=False)
    probe = checks.Probe(config, platform="darwin", connect_udp=refusing_connect(errno.EHOSTUNREACH))
    rows = checks.run_checks(probe, [checks.check_osc])
    assert [r.name for r in rows] == ["OSC target", "OSC target"] and not checks.ready(rows)
    assert all(macos.LOCAL_NETWORK_SETTINGS in r.fix for r in rows)
    assert "192.168.1.31:7000" in rows[1].detail
