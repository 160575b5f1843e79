"""OSC control in: allow-list, types and ranges, fuzzing over the real socket and in process."""

from __future__ import annotations

import logging
import math
import queue
import socket
import struct
import subprocess
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from voicevibe import control
from voicevibe.config import ConfigError, ControlConfig
from voicevibe.control import ControlServer
from voicevibe.events import (
    Command,
    Freeze,
    Panic,
    PauseBrain,
    ResetMemory,
    SetAgc,
    SetGain,
    SetGate,
    SetStyle,
    SetVibe,
)

ACTIONS = ["gain", "gate", "agc", "freeze", "panic", "pause", "style", "vibe", "reset"]


def message(address: str, *args: object, types: str | None = None) -> bytes:
    builder = OscMessageBuilder(address)
    for i, arg in enumerate(args):
        builder.add_arg(arg, types[i] if types else None)
    return builder.build().dgram


def in_range(command: Command) -> bool:
    """What every accepted command must satisfy."""
    if isinstance(command, SetGain):
        return isinstance(command.db, float) and math.isfinite(command.db) and -24.0 <= command.db <= 24.0
    if isinstance(command, SetGate):
        return isinstance(command.threshold, float) and math.isfinite(command.threshold) and \
            0.0 <= command.threshold <= 1.0
    if isinstance(command, (SetAgc, Freeze, Panic, PauseBrain)):
        return isinstance(command.on, bool)
    if isinstance(command, SetStyle):
        return isinstance(command.name, str) and 0 < len(command.name) <= 64 and command.name.isprintable()
    if isinstance(command, SetVibe):
        return isinstance(command.text, str) and len(command.text) <= 500 and command.text.isprintable()
    return isinstance(command, ResetMemory)


class Server:
    """A ControlServer on 127.0.0.1 (port 0) whose commands and rejections land on queues."""

    def __init__(self, allow: str = "127.0.0.1") -> None:
        self.commands: queue.Queue = queue.Queue()
        self.rejects: queue.Queue = queue.Queue()
        self.server = ControlServer(ControlConfig(enabled=True, host="127.0.0.1", port=0, allow=allow),
                                    self.commands.put, self.rejects.put)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))

    def send(self, dgram: bytes) -> None:
        self.sock.sendto(dgram, self.server.address)

    def close(self) -> None:
        self.sock.close()
        self.server.close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def test_valid_controls_become_commands(server: Server) -> None:
    server.send(message("/voicevibe/gain", -6.5))
    server.send(message("/voicevibe/gate", 0.04))
    server.send(message("/voicevibe/freeze", True))
    server.send(message("/voicevibe/panic", 1.0))  # a TouchOSC button press
    server.send(message("/voicevibe/pause", 0, types="i"))
    server.send(message("/voicevibe/vibe", "  sous l'eau,\n mélancolique 🌊 "))
    server.send(message("/voicevibe/style", "noir"))
    server.send(message("/voicevibe/reset"))
    got = [server.commands.get(timeout=5) for _ in range(8)]
    assert got == [SetGain(-6.5), SetGate(pytest.approx(0.04)), Freeze(True), Panic(True), PauseBrain(False),
                   SetVibe("sous l'eau, mélancolique 🌊"), SetStyle("noir"), ResetMemory()]
    assert server.server.accepted == 8 and server.rejects.empty()


def test_bundles_are_unpacked_at_once_and_a_release_is_not_a_reset(server: Server) -> None:
    inner = OscBundleBuilder(time.time() + 3600)  # a time tag an hour ahead: still acted on at once
    inner.add_content(OscMessage(message("/voicevibe/reset", 0.0)))  # a button's release
    outer = OscBundleBuilder(IMMEDIATELY)
    outer.add_content(inner.build())
    outer.add_content(OscMessage(message("/voicevibe/agc", False)))
    server.send(outer.build().dgram)
    assert (server.commands.get(timeout=5), server.server.accepted) == (SetAgc(False), 1)
    assert server.rejects.empty()


class Handler:
    """One ControlServer for many in-process checks: its clock jumps, so no rejection is rate-limited."""

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.rejects: list[str] = []
        self.ticks = 0.0
        self.server = ControlServer(ControlConfig(port=0), self.commands.append, self.rejects.append,
                                    clock=self.tick)

    def tick(self) -> float:
        self.ticks += control.REPORT_SECONDS
        return self.ticks

    def handle(self, dgram: bytes) -> list[Command]:
        self.commands.clear()
        self.rejects.clear()
        return self.server.handle(dgram, ("127.0.0.1", 9))


@pytest.fixture(scope="module")
def handler() -> Iterator[Handler]:
    h = Handler()
    yield h
    h.server.close()


@pytest.mark.parametrize("dgram, reason", [
    (message("/voicevibe/gain", 30.0), "from -24 to 24 dB"),
    (message("/voicevibe/gain", float("nan")), "from -24 to 24 dB"),
    (message("/voicevibe/gate", float("inf"), types="d"), "from 0 to 1"),
    (message("/voicevibe/gain", "6"), "expects one number"),
    (message("/voicevibe/gain", True), "expects one number"),
    (message("/voicevibe/gain", 1.0, 2.0), "expects one number"),
    (message("/voicevibe/freeze", 2, types="i"), "expects one flag"),
    (message("/voicevibe/vibe", "x" * 501), "at most 500 characters"),
    (message("/voicevibe/style", "a\x07b"), "printable"),
    (message("/voicevibe/style", ""), "non-empty"),
    (message("/voicevibe/volume", 1.0), "unknown control address"),
    (message("/voicevibe/gain", b"\x00\x01", types="b"), "unsupported OSC type tags"),
    (b"hello!!!", "not an OSC message"),
    (b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", -4), "malformed bundle"),  # python-osc loops forever on it
    (b"/voicevibe/gain\x00,f\x00\x00\x41", "a multiple of 4 bytes"),
    (b"/voicevibe/vibe\x00,s\x00\x00\xff\xfe\x00\x00", "malformed OSC message"),
])
def test_bad_controls_are_rejected_with_the_reason(handler: Handler, dgram: bytes, reason: str) -> None:
    assert handler.handle(dgram) == [] and handler.commands == []
    assert len(handler.rejects) == 1 and reason in handler.rejects[0]


def test_non_allowed_sender_is_ignored() -> None:
    s = Server(allow="127.0.0.1")
    outsider = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        outsider.bind(("127.0.0.2", 0))  # Linux routes all of 127/8 locally
        outsider.sendto(message("/voicevibe/panic", True), s.server.address)
        assert "127.0.0.2 ignored: not in control.allow" in s.rejects.get(timeout=5)
        s.send(message("/voicevibe/gain", 3.0))  # the allowed sender, after: the outsider's came first
        assert s.commands.get(timeout=5) == SetGain(3.0)
        assert s.server.accepted == 1 and s.server.rejected == 1 and s.commands.empty()
    finally:
        outsider.close()
        s.close()


def test_allow_accepts_networks_and_rejects_bad_entries() -> None:
    assert ControlConfig(allow="10.0.0.0/8, ::1").allow_list()[0].num_addresses == 2**24
    with pytest.raises(ConfigError, match="'10.0.0.x' is not an IP address"):
        ControlConfig(allow="127.0.0.1, 10.0.0.x")
    with ControlServer(ControlConfig(port=0, allow="10.0.0.0/8"), lambda c: None) as server:
        assert server.handle(message("/voicevibe/reset"), ("10.1.2.3", 5)) == [ResetMemory()]
        assert server.handle(message("/voicevibe/reset"), ("::ffff:10.1.2.3", 5, 0, 0))  # dual-stack form
        assert server.handle(message("/voicevibe/reset"), ("11.0.0.1", 5)) == []


def test_port_in_use_is_a_clear_error(server: Server) -> None:
    with pytest.raises(ConfigError, match=r"cannot listen on 127.0.0.1:\d+: .*control.port"):
        ControlServer(ControlConfig(host="127.0.0.1", port=server.server.address[1]), lambda c: None)


def test_rejections_are_rate_limited_per_sender(caplog: pytest.LogCaptureFixture) -> None:
    clock = [100.0]
    rejects: list[str] = []
    with ControlServer(ControlConfig(port=0), lambda c: None, rejects.append, clock=lambda: clock[0]) as server:
        for _ in range(50):
            server.handle(b"junk", ("127.0.0.1", 9))
        server.handle(b"junk", ("10.9.9.9", 9))  # another sender has its own budget
        clock[0] += control.REPORT_SECONDS
        server.handle(b"junk", ("127.0.0.1", 9))
    assert len(rejects) == 3 and "49 more ignored from 127.0.0.1" in rejects[2]
    assert server.rejected == 52
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 3


osc_arg = st.one_of(
    st.integers(-2**31, 2**31 - 1).map(lambda v: (v, "i")),
    st.integers(-2**63, 2**63 - 1).map(lambda v: (v, "h")),
    st.floats(width=32).map(lambda v: (v, "f")),
    st.floats().map(lambda v: (v, "d")),
    st.text(max_size=2000).map(lambda v: (v.replace("\x00", ""), "s")),
    st.booleans().map(lambda v: (v, "T" if v else "F")),
    st.binary(min_size=1, max_size=64).map(lambda v: (v, "b")),
)
address = st.one_of(st.sampled_from([f"/voicevibe/{a}" for a in ACTIONS]),
                    st.text(min_size=1, max_size=40).map(lambda t: "/" + t.replace("\x00", "")))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(address=address, args=st.lists(osc_arg, max_size=3))
def test_fuzzed_messages_never_crash_or_escape_their_range(handler: Handler, address: str, args: list) -> None:
    dgram = message(address, *[v for v, _ in args], types="".join(t for _, t in args))
    commands = handler.handle(dgram)
    assert commands == handler.commands and all(in_range(c) for c in commands)
    assert len(commands) + len(handler.rejects) <= 1


@settings(max_examples=400, deadline=None)
@given(data=st.one_of(st.binary(max_size=2000),
                      st.binary(max_size=200).map(lambda b: b"#bundle\x00" + b),
                      st.binary(max_size=200).map(lambda b: b"/voicevibe/gain\x00" + b)))
def test_random_bytes_only_ever_raise_control_error(data: bytes) -> None:
    try:
        messages = control.parse_packet(data)
    except control.ControlError:
        return
    for address, args in messages:
        try:
            command = control.command_from(address, args)
        except control.ControlError:
            continue
        assert command is None or in_range(command)


def test_the_server_thread_survives_a_storm(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    storm = [b"", b"\x00" * 65000, b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", -4),
             message("/voicevibe/vibe", "é" * 20000), message("/voicevibe/gain", float("nan")),
             b"/voicevibe/gain\x00,\xff\xff\x00"] + [bytes([i]) * 13 for i in range(256)]
    for start in range(0, len(storm), 16):  # in batches, so the socket's receive buffer never overflows
        batch = storm[start:start + 16]
        expected = server.server.rejected + len(batch)
        for dgram in batch:
            server.send(dgram)
        for _ in range(500):
            if server.server.rejected >= expected:
                break
            time.sleep(0.01)
        assert server.server.rejected == expected
    server.send(message("/voicevibe/gate", 0.5))
    assert (server.commands.get(timeout=5), server.server.accepted) == (SetGate(0.5), 1)
    assert server.server.rejected > 0 and server.server._thread.is_alive()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_liblo_oscsend_drives_the_server(server: Server) -> None:
    """An independent sender (liblo's oscsend, as the README suggests) is understood."""
    port = str(server.server.address[1])
    cases = [(["/voicevibe/gain", "f", "-6"], SetGain(-6.0)),
             (["/voicevibe/vibe", "s", "sous l'eau, été 🌊"], SetVibe("sous l'eau, été 🌊")),
             (["/voicevibe/freeze", "T"], Freeze(True)),
             (["/voicevibe/gate", "d", "0.1"], SetGate(0.1))]
    for args, expected in cases:
        subprocess.run(["oscsend", "localhost", port, *args], check=True, timeout=30)
        assert server.commands.get(timeout=5) == expected
