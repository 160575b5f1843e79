"""OSC control in: a small UDP server turning allowed, well-formed messages into typed commands.

| address            | arguments                                   | command (events.py)  |
|--------------------|---------------------------------------------|----------------------|
| /voicevibe/gain    | one number, -24 to 24 (dB)                  | SetGain              |
| /voicevibe/gate    | one number, 0 to 1 (linear peak threshold)  | SetGate              |
| /voicevibe/agc     | one flag                                    | SetAgc               |
| /voicevibe/freeze  | one flag                                    | Freeze               |
| /voicevibe/panic   | one flag                                    | Panic                |
| /voicevibe/pause   | one flag                                    | PauseBrain           |
| /voicevibe/style   | one string, 1 to 64 characters              | SetStyle             |
| /voicevibe/vibe    | one string, up to 500 characters ("" clears)| SetVibe              |
| /voicevibe/reset   | nothing, or one flag (0/false is ignored)   | ResetMemory          |
| /voicevibe/cue     | a cue number (1-99, as on its button) or name | FireCue            |
| /voicevibe/cue/next, /voicevibe/cue/previous | nothing, or one flag | NextCue, PreviousCue |
| /voicevibe/seed/lock | one flag                                  | SeedLock             |
| /voicevibe/seed/new | nothing, or one flag                       | NewSeed              |
| /voicevibe/transition | one number, 0 to 30 (seconds)            | SetTransition        |

A number is an OSC int32/int64/float32/float64 (`i h f d`), finite; a flag is `T`/`F`, or a
number from 0 to 1 (0.5 and up is on: a TouchOSC or TouchDesigner button sends 1.0 then 0.0).
Strings have their whitespace collapsed and may not hold control characters. Bundles are
accepted (their time tags are ignored: a command acts at once). Studio-Carlos/VoceVibe had no
control input, so there is no compatible form to mirror.

Anything else (a sender outside `control.allow`, an unknown address, a wrong type, a value out
of range, a malformed or truncated datagram) is logged, rate-limited per sender, and ignored.
The server reads datagrams up to 65,535 bytes itself: python-osc's socketserver-based servers
drop datagrams over 8192 bytes without a word, and its bundle parser loops forever on an
element size of -4, so bundles are walked here and only messages go to python-osc.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import socket
import threading
import time
from collections.abc import Callable

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message import ParseError as MessageParseError
from pythonosc.parsing import osc_types

from voicevibe.config import ConfigError, ControlConfig
from voicevibe.events import (
    Command,
    FireCue,
    Freeze,
    NewSeed,
    NextCue,
    Panic,
    PauseBrain,
    PreviousCue,
    ResetMemory,
    SeedLock,
    SetAgc,
    SetGain,
    SetGate,
    SetStyle,
    SetTransition,
    SetVibe,
)
from voicevibe.ratelimit import RateLimiter

log = logging.getLogger(__name__)

PREFIX = "/voicevibe/"
GAIN_DB = (-24.0, 24.0)  # the dsp.gain_db range
GATE = (0.0, 1.0)  # the dsp.gate_threshold range
MAX_STYLE_CHARS = 64
MAX_VIBE_CHARS = 500
MAX_MESSAGES = 64  # per datagram, bundles included
MAX_BUNDLE_DEPTH = 4
ACCEPTED_TAGS = set("ihfdsTF")  # blobs, arrays, time tags... are never a control value
REPORT_SECONDS = 5.0  # at most one rejection report per sender this often; the rest are counted
POLL_SECONDS = 0.2  # how often the server thread checks for close()
FLAGS: dict[str, Callable[[bool], Command]] = {
    "agc": SetAgc, "freeze": Freeze, "panic": Panic, "pause": PauseBrain, "seed/lock": SeedLock}
BUTTONS: dict[str, Callable[[], Command]] = {
    "reset": ResetMemory, "seed/new": NewSeed, "cue/next": lambda: NextCue(via="osc"),
    "cue/previous": lambda: PreviousCue(via="osc")}  # nothing, or a flag whose 0 is a release
TRANSITION_SECONDS = (0.0, 30.0)  # the show.transition_seconds range
MAX_CUE_NAME_CHARS = 100


class ControlError(ValueError):
    """A control message that is not acceptable; the message says why."""


def parse_packet(data: bytes, depth: int = 0) -> list[tuple[str, list[object]]]:
    """The (address, arguments) of every message in a datagram; ControlError if malformed."""
    if len(data) % 4:  # python-osc would pad a truncated number with zeros and accept it
        raise ControlError(f"{len(data)} bytes: an OSC packet is a multiple of 4 bytes")
    if data.startswith(b"#bundle\x00"):
        if depth >= MAX_BUNDLE_DEPTH:
            raise ControlError(f"bundles nested deeper than {MAX_BUNDLE_DEPTH}")
        if len(data) < 16:
            raise ControlError("truncated bundle")
        messages, index = [], 16
        while index < len(data):
            size = int.from_bytes(data[index:index + 4], "big", signed=True)
            if index + 4 > len(data) or size <= 0 or size % 4 or index + 4 + size > len(data):
                raise ControlError("malformed bundle element size")
            messages += parse_packet(data[index + 4:index + 4 + size], depth + 1)
            index += 4 + size
            if len(messages) > MAX_MESSAGES:
                raise ControlError(f"more than {MAX_MESSAGES} messages in one datagram")
        return messages
    if not data.startswith(b"/"):
        raise ControlError("not an OSC message or bundle")
    try:
        _, index = osc_types.get_string(data, 0)
        if index < len(data):  # python-osc logs (to the root logger) every unknown tag: check first
            tags, _ = osc_types.get_string(data, index)
            if not tags.startswith(",") or not set(tags[1:]) <= ACCEPTED_TAGS:
                raise ControlError(f"unsupported OSC type tags {tags[:20]!r}")
        message = OscMessage(data)
    except (osc_types.ParseError, MessageParseError, UnicodeDecodeError) as e:
        raise ControlError(f"malformed OSC message ({e})") from e
    return [(message.address, list(message.params))]


def _number(args: list[object], lo: float, hi: float, unit: str) -> float:
    if len(args) != 1 or isinstance(args[0], bool) or not isinstance(args[0], (int, float)):
        raise ControlError(f"expects one number from {lo:g} to {hi:g}{unit}, got {args!r:.80}")
    value = float(args[0])
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ControlError(f"expects one number from {lo:g} to {hi:g}{unit}, got {value!r}")
    return value


def _flag(args: list[object]) -> bool:
    if len(args) == 1 and isinstance(args[0], bool):
        return args[0]
    if len(args) == 1 and isinstance(args[0], (int, float)) and 0.0 <= args[0] <= 1.0:
        return args[0] >= 0.5
    raise ControlError(f"expects one flag (T/F, or a number from 0 to 1), got {args!r:.80}")


def _string(args: list[object], max_chars: int, *, empty_ok: bool) -> str:
    if len(args) != 1 or not isinstance(args[0], str):
        raise ControlError(f"expects one string, got {args!r:.80}")
    text = " ".join(args[0].split())
    if len(text) > max_chars:
        raise ControlError(f"expects at most {max_chars} characters, got {len(text)}")
    if not text.isprintable():
        raise ControlError("expects printable text, got control characters")
    if not text and not empty_ok:
        raise ControlError("expects a non-empty string")
    return text


def command_from(address: str, args: list[object]) -> Command | None:
    """The command a message asks for; None for a button release; ControlError when invalid."""
    action = address[len(PREFIX):] if address.startswith(PREFIX) else ""
    if action == "gain":
        return SetGain(_number(args, *GAIN_DB, " dB"))
    if action == "gate":
        return SetGate(_number(args, *GATE, " (linear peak)"))
    if action in FLAGS:
        return FLAGS[action](_flag(args))
    if action == "style":
        return SetStyle(_string(args, MAX_STYLE_CHARS, empty_ok=False))
    if action == "vibe":
        return SetVibe(_string(args, MAX_VIBE_CHARS, empty_ok=True))
    if action in BUTTONS:
        return BUTTONS[action]() if not args or _flag(args) else None
    if action == "cue":
        return FireCue(_cue(args), via="osc")
    if action == "transition":
        return SetTransition(_number(args, *TRANSITION_SECONDS, " s"))
    raise ControlError(f"unknown control address {address[:80]!r} (known: {PREFIX}gain, gate, agc, "
                       "freeze, panic, pause, style, vibe, reset, cue, cue/next, cue/previous, seed/lock, seed/new, "
                       "transition)")


def _cue(args: list[object]) -> int | str:
    """A cue number (an integer, or a whole float as TouchOSC sends) or a cue name."""
    if len(args) == 1 and isinstance(args[0], str):
        return _string(args, MAX_CUE_NAME_CHARS, empty_ok=False)
    if len(args) == 1 and isinstance(args[0], (int, float)) and not isinstance(args[0], bool):
        value = args[0]
        if math.isfinite(value) and value == int(value) and 1 <= value <= 99:
            return int(value)
    raise ControlError(f"expects one cue number from 1 to 99 or a cue name, got {args!r:.80}")


def _plain_ip(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The sender's address, an IPv4-mapped IPv6 address as IPv4."""
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


class ControlServer:
    """Listens on control.host:control.port in its own thread; calls `on_command` for valid controls."""

    def __init__(self, config: ControlConfig, on_command: Callable[[Command], None],
                 on_reject: Callable[[str], None] | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._allow = config.allow_list()
        self._on_command, self._on_reject = on_command, on_reject
        self.accepted = self.rejected = 0
        self._reports = RateLimiter(REPORT_SECONDS, clock)  # per sender ip
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                config.host, config.port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)[0]
            self._sock = socket.socket(family, kind, proto)
        except OSError as e:
            raise ConfigError(f"[control] host = {config.host!r}: not an interface address ({e.strerror or e})"
                              ) from e
        try:
            self._sock.bind(address)
        except OSError as e:
            self._sock.close()
            raise ConfigError(f"[control] cannot listen on {config.host}:{config.port}: {e.strerror or e} "
                              "(another program on that port? change control.port or control.host)") from e
        self._sock.settimeout(POLL_SECONDS)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="osc-control")
        self._thread.start()
        log.info("OSC control listening on %s:%d, allowed: %s", *self.address, config.allow)

    def __enter__(self) -> ControlServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the thread (within POLL_SECONDS), join it and close the socket; idempotent."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError as e:
                if not self._stop.is_set():
                    log.warning("OSC control: receive failed: %s", e)
                    self._stop.wait(POLL_SECONDS)
                continue
            try:
                self.handle(data, sender)
            except Exception:  # the callback is app code: log it and keep listening
                log.exception("OSC control: handling a datagram from %s failed", sender[0])

    def handle(self, data: bytes, sender: tuple[str, int] | tuple[str, int, int, int]) -> list[Command]:
        """Check one datagram from `sender` and act on it; the commands it produced."""
        ip, port = sender[0], sender[1]
        if not any(_plain_ip(ip) in network for network in self._allow):
            self._reject(ip, f"control from {ip} ignored: not in control.allow ({self.config.allow})")
            return []
        try:
            messages = parse_packet(data)
        except ControlError as e:
            self._reject(ip, f"control datagram from {ip} ignored: {e}")
            return []
        commands = []
        for address, args in messages:
            try:
                command = command_from(address, args)
            except ControlError as e:
                self._reject(ip, f"control {address[:80]} from {ip} ignored: {e}")
                continue
            if command is not None:
                self.accepted += 1
                log.info("OSC control from %s:%d: %s", ip, port, command)
                commands.append(command)
                self._on_command(command)
        return commands

    def _reject(self, ip: str, message: str) -> None:
        """Count a rejection; log and report it unless this sender had one reported recently."""
        self.rejected += 1
        held = self._reports.allow(ip)
        if held is None:
            log.debug("%s (not reported: rate limit)", message)
            return
        if held:
            message += f" ({held} more ignored from {ip} since the last report)"
        log.warning("%s", message)
        if self._on_reject is not None:
            self._on_reject(message)
