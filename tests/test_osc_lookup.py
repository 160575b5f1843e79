"""OSC targets' name lookups never hold up a caller or another target; a send macOS refuses for want of the
Local Network permission says where to allow it (platform faked), and elsewhere keeps the errno's own words."""

from __future__ import annotations

import errno
import os
import socket
import threading

import pytest

from support.osc import SlowLookup, free_port, refusing_connect
from voicevibe import macos, osc
from voicevibe.config import OscConfig
from voicevibe.events import ImagePrompt, Status, TargetStatus
from voicevibe.testing.peer import OscPeer

SLOW = "render-pc.local"


def make_prompt(text: str) -> ImagePrompt:
    return ImagePrompt(text, text, "cinematic", "calm", "model")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_five_second_lookup_never_delays_the_caller_or_the_other_target() -> None:
    with OscPeer() as fast, OscPeer() as late:
        lookup = SlowLookup(SLOW, late.port, sleep=5.0)
        config = OscConfig(targets=f"{SLOW}:{late.port}, 127.0.0.1:{fast.port}", send_json=False)
        with osc.OscSender(config, connect=lookup) as sender:  # the constructor returned: it did not wait 5 s
            assert lookup.started.wait(5)
            sender.send_prompt(make_prompt("first"))
            sender.heartbeat(force=True)
            statuses = sender.statuses()
            assert not lookup.finished.is_set()  # every call above returned while the lookup still slept
            assert lookup.threads and threading.current_thread() not in lookup.threads
            assert [m.params for m in fast.wait_for("/visual/prompt", 1)] == [["first"]]
            assert not lookup.finished.is_set()  # the other target got its datagram during the slow lookup
            assert statuses[0].sent == 0 and not statuses[0].failing  # waiting for its address is not an error
            assert sender.wait_for_lookups(30)
            assert [m.params for m in late.wait_for("/visual/prompt", 1)] == [["first"]]  # it waited, then left
            assert late.wait_for("/visual/heartbeat", 1)
            assert [(s.sent, s.errors) for s in sender.statuses()] == [(4, 0), (4, 0)]


def test_a_failing_name_is_retried_on_its_own_thread_and_its_datagrams_are_counted_lost() -> None:
    clock, reports = FakeClock(), []
    with OscPeer() as fast:
        lookup = SlowLookup(SLOW, free_port(), error=OSError(errno.EAGAIN, "Temporary failure in name resolution"))
        config = OscConfig(targets=f"{SLOW}:9000, 127.0.0.1:{fast.port}", send_json=False, send_style=False,
                           send_mood=False)
        with osc.OscSender(config, reports.append, clock=clock, connect=lookup) as sender:
            assert lookup.started.wait(5)
            sender.send_prompt(make_prompt("waits"))
            lookup.gate.set()
            assert sender.wait_for_lookups(10)
            slow, _ = sender.statuses()
            assert slow.errors == 1 and slow.failing and "Temporary failure" in slow.last_error
            lookup.gate.clear()
            lookup.started.clear()
            clock.now += osc.RETRY_SECONDS
            sender.send_prompt(make_prompt("during the retry"))  # starts the second lookup, which blocks
            assert lookup.started.wait(5)
            sender.panic(True)  # the sender's lock is free while the lookup runs
            sender.panic(False)
            assert [m.params for m in fast.wait_for("/visual/prompt", 3)] == [
                ["waits"], ["during the retry"], [config.panic_prompt]]
            assert len(lookup.threads) == 2 and threading.current_thread() not in lookup.threads
            # No address: what went during the retry is lost and counted (a prompt, panic's prompt and flag, its end).
            assert sender.statuses()[0].errors == 1 + 1 + 2 + 1
            lookup.gate.set()
            assert sender.wait_for_lookups(10)
    warnings = [r.message for r in reports if isinstance(r, Status)]
    assert len(warnings) == 2 and all(f"cannot reach {SLOW}:9000" in w for w in warnings)


def test_closing_during_a_lookup_returns_at_once_and_the_late_socket_is_closed() -> None:
    lookup = SlowLookup(SLOW, free_port())
    sender = osc.OscSender(OscConfig(targets=f"{SLOW}:9000"), connect=lookup)
    assert lookup.started.wait(5)
    sender.send_prompt(make_prompt("never leaves"))
    sender.close()
    lookup.gate.set()
    assert sender.wait_for_lookups(10)
    (status,) = sender.statuses()
    assert status.sent == 0 and not any(t.sock for t in sender._targets)


@pytest.mark.parametrize("number", [errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EPERM])
@pytest.mark.parametrize("platform", ["darwin", "linux"])
def test_a_refused_send_says_local_network_on_a_mac_and_the_errno_elsewhere(
        monkeypatch: pytest.MonkeyPatch, number: int, platform: str) -> None:
    monkeypatch.setattr(macos, "PLATFORM", platform)
    reports: list[TargetStatus | Status] = []
    with osc.OscSender(OscConfig(targets=f"192.168.1.30:{free_port()}"), reports.append,
                       connect=refusing_connect(number)) as sender:
        assert sender.wait_for_lookups(10)
        assert sender.send_prompt(make_prompt("refused")) is not None
        (status,) = sender.statuses()
    assert status.errors == 4 and status.sent == 0 and status.failing
    assert os.strerror(number) in status.last_error
    (warning,) = [r for r in reports if isinstance(r, Status)]
    mac = platform == "darwin"
    for text in (status.last_error, warning.message):
        assert ("allow VoiceVibe in System Settings > Privacy & Security > Local Network" in text) == mac


def test_an_unrelated_error_on_a_mac_keeps_its_own_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(macos, "PLATFORM", "darwin")
    with osc.OscSender(OscConfig(targets="192.168.1.30:9000"), connect=refusing_connect(errno.ENOBUFS)) as sender:
        assert sender.wait_for_lookups(10)
        sender.send_text("full buffer")
        (status,) = sender.statuses()
    assert os.strerror(errno.ENOBUFS) in status.last_error and "Local Network" not in status.last_error


def test_a_connect_refused_by_the_permission_says_so_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(macos, "PLATFORM", "darwin")
    lookup = SlowLookup(SLOW, 9000, error=OSError(errno.EHOSTUNREACH, os.strerror(errno.EHOSTUNREACH)))
    lookup.gate.set()
    with osc.OscSender(OscConfig(targets=f"{SLOW}:9000"), connect=lookup) as sender:
        assert sender.wait_for_lookups(10)
        (status,) = sender.statuses()
    assert status.last_error.startswith(f"cannot reach {SLOW}:9000: {os.strerror(errno.EHOSTUNREACH)}")
    assert macos.LOCAL_NETWORK_SETTINGS in status.last_error


def test_a_lookup_that_breaks_still_answers_and_is_retried() -> None:
    def broken(host: str, port: int) -> socket.socket:
        raise RuntimeError("resolver bug")

    clock = FakeClock()
    with osc.OscSender(OscConfig(targets=f"{SLOW}:9000", send_json=False), clock=clock, connect=broken) as sender:
        assert sender.wait_for_lookups(10)  # an answer came: the target does not wait forever
        (status,) = sender.statuses()
        assert status.failing and "the lookup failed (RuntimeError: resolver bug)" in status.last_error
        clock.now += osc.RETRY_SECONDS
        sender.send_text("again")
        assert sender.wait_for_lookups(10) and sender.statuses()[0].errors == 1
