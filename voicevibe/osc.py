"""OSC out: pure message builders (bytes) and a thin UDP sender with per-target status.

Every message carries plain OSC 1.0 arguments built with python-osc: strings are UTF-8 (`s`),
flags are int32 1/0 (`i`, what TouchDesigner's OSC In CHOP reads), the level is a float32 (`f`).
Plain messages by default; `osc.bundles` groups a prompt's messages in one bundle.
Every datagram stays under `osc.max_datagram_bytes`: long text is cut at a word boundary (never
inside a UTF-8 character) with a warning.

| name           | generic          | vocevibe (port 2992)   | scope           | argument        |
|----------------|------------------|------------------------|-----------------|-----------------|
| prompt         | /prompt          | /visual/prompt         | /scope/prompt   | s prompt        |
| style          | /style           | /visual/style          | -               | s style preset  |
| mood           | /mood            | /visual/mood           | -               | s mood          |
| json           | /json            | /visual/json           | -               | s JSON object   |
| phrase         | /phrase          | /visual/transcript     | -               | s phrase        |
| level          | /level           | /visual/level          | -               | f peak 0..1     |
| summary_text   | /summary/text    | /summary/text          | -               | s summary       |
| summary_prompt | /summary/prompt  | /summary/image_prompt  | -               | s image prompt  |
| heartbeat      | /heartbeat       | /visual/heartbeat      | -               | i counter       |
| panic          | /panic           | /visual/panic          | -               | i 1 on, 0 off   |
| freeze         | /freeze          | /visual/freeze         | -               | i 1 on, 0 off   |
| seed           | /seed            | -                      | -               | i seed          |
| blend          | /prompt_list     | -                      | -               | s JSON list     |
| transition     | -                | -                      | /scope/transition_steps | i steps |

Scope sets a pipeline parameter for every `/scope/<key>` it receives, so its preset sends the
prompt and its transition steps only. Seeds, blends and transitions are show/transitions.py's (`TransitionSender`).
`osc.addresses` overrides any address ("name=/address", empty: off).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing.osc_types import write_string

from voicevibe.config import OscConfig
from voicevibe.events import ImagePrompt, Phrase, Status, Summary, TargetStatus
from voicevibe.osc_targets import Connector, Outcome, Target, connect_udp, is_address, send_error
from voicevibe.ratelimit import RateLimiter

log = logging.getLogger(__name__)

REPORT_SECONDS = 5.0  # at most one error report per target this often; the rest are counted
RETRY_SECONDS = 5.0  # an unresolvable host is looked up again at most this often (on its own thread)
BUNDLE_OVERHEAD = 16 + 4  # "#bundle\0" + time tag, then each element's int32 size


@dataclass(frozen=True)
class Addresses:
    """The OSC address of each message; "" turns that message off."""

    prompt: str
    style: str = ""
    mood: str = ""
    json: str = ""
    phrase: str = ""
    level: str = ""
    summary_text: str = ""
    summary_prompt: str = ""
    heartbeat: str = ""
    panic: str = ""
    freeze: str = ""
    seed: str = ""  # i the seed, with each prompt (show/transitions.py)
    blend: str = ""  # s a JSON weighted prompt list during a transition (show/transitions.py)
    transition: str = ""  # i generation steps of the next prompt change, before it (show/transitions.py)


PRESETS: dict[str, Addresses] = {
    "generic": Addresses("/prompt", "/style", "/mood", "/json", "/phrase", "/level", "/summary/text",
                         "/summary/prompt", "/heartbeat", "/panic", "/freeze", seed="/seed", blend="/prompt_list"),
    # Studio-Carlos/VoceVibe's addresses (src/osc_client.py, src/summary_engine.py), then our extras.
    "vocevibe": Addresses("/visual/prompt", "/visual/style", "/visual/mood", "/visual/json",
                          "/visual/transcript", "/visual/level", "/summary/text", "/summary/image_prompt",
                          "/visual/heartbeat", "/visual/panic", "/visual/freeze"),
    "scope": Addresses("/scope/prompt", transition="/scope/transition_steps"),
}


@functools.lru_cache(maxsize=16)
def addresses_for(config: OscConfig) -> Addresses:
    """The preset's addresses with `osc.addresses` overrides applied."""
    return dataclasses.replace(PRESETS[config.preset], **config.address_overrides())


def fit_text(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8, at a word boundary when there is one."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    cut = data[:max(0, max_bytes)].decode("utf-8", errors="ignore")  # a split character goes whole
    if data[len(cut.encode("utf-8")):][:1].isspace():
        return cut.rstrip()
    match = re.search(r"\s\S*\Z", cut)
    if match and match.start() >= len(cut) // 2:  # a word boundary, unless that loses over half
        cut = cut[:match.start()]
    return cut.rstrip()


def osc_message(address: str, *args: str | int | float) -> OscMessage:
    """One OSC message with explicit type tags (s, i, f)."""
    builder = OscMessageBuilder(address)
    for arg in args:
        kind = (OscMessageBuilder.ARG_TYPE_STRING if isinstance(arg, str)
                else OscMessageBuilder.ARG_TYPE_INT if isinstance(arg, int)
                else OscMessageBuilder.ARG_TYPE_FLOAT)
        builder.add_arg(arg, kind)
    return builder.build()


def message_cap(config: OscConfig) -> int:
    """The largest message: the whole datagram, less the bundle framing when bundling."""
    return config.max_datagram_bytes - (BUNDLE_OVERHEAD if config.bundles else 0)


def text_budget(address: str, cap: int) -> int:
    """Most UTF-8 bytes a one-string message at `address` may carry within `cap` bytes."""
    overhead = len(write_string(address)) + 4  # address, then ",s\0\0"
    return (cap - overhead) // 4 * 4 - 1  # the string's own NUL and padding


def _text_message(address: str, text: str, cap: int, what: str) -> OscMessage:
    """A one-string message, the string cut to fit `cap` bytes (with a warning)."""
    fitted = fit_text(text, text_budget(address, cap))
    if fitted != text:
        log.warning("%s cut from %d to %d bytes to fit one %d-byte datagram (osc.max_datagram_bytes)",
                    what, len(text.encode("utf-8")), len(fitted.encode("utf-8")), cap)
    return osc_message(address, fitted)


def _json_message(address: str, obj: dict[str, object], cap: int) -> OscMessage:
    """The object as one JSON string, its longest strings shortened until it fits."""
    budget = text_budget(address, cap)
    obj = dict(obj)
    for _ in range(12):
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        excess = len(text.encode("utf-8")) - budget
        if excess <= 0:
            return osc_message(address, text)
        key = max((k for k, v in obj.items() if isinstance(v, str)), key=lambda k: len(str(obj[k]).encode()))
        value = str(obj[key])
        obj[key] = fit_text(value, len(value.encode("utf-8")) - excess - 8)
    log.warning("JSON message cut to its prompt to fit one %d-byte datagram", cap)
    return osc_message(address, json.dumps({"prompt": fit_text(str(obj.get("prompt", "")), budget // 7 - 16)}))


def _pack(messages: list[OscMessage], config: OscConfig) -> list[bytes]:
    """Plain datagrams, or as few bundles under the datagram limit as the messages need."""
    if not config.bundles:
        return [m.dgram for m in messages]
    bundles: list[bytes] = []
    builder, size = None, 0
    for message in messages:
        if builder is not None and size + 4 + message.size > config.max_datagram_bytes:
            bundles.append(builder.build().dgram)
            builder = None
        if builder is None:
            builder, size = OscBundleBuilder(IMMEDIATELY), 16
        builder.add_content(message)
        size += 4 + message.size
    if builder is not None:
        bundles.append(builder.build().dgram)
    return bundles


def prompt_datagrams(prompt: ImagePrompt, config: OscConfig) -> list[bytes]:
    """The prompt message, then style, mood and JSON when configured."""
    addr, cap = addresses_for(config), message_cap(config)
    messages = [_text_message(addr.prompt, prompt.text, cap, "prompt")]
    if config.send_style and addr.style:
        messages.append(_text_message(addr.style, prompt.style, cap, "style"))
    if config.send_mood and addr.mood:
        messages.append(_text_message(addr.mood, prompt.mood, cap, "mood"))
    if config.send_json and addr.json:
        fields = {"prompt": prompt.text, "style": prompt.style, "mood": prompt.mood, "phrase": prompt.phrase,
                  "source": prompt.source, "reason": prompt.reason, "model": prompt.model,
                  "latency_ms": round(prompt.latency_ms, 1)}
        messages.append(_json_message(addr.json, fields, cap))
    return _pack(messages, config)


def text_datagrams(text: str, config: OscConfig) -> list[bytes]:
    """A prompt typed by the operator (whitespace collapsed), with its JSON when configured."""
    text = " ".join(text.split())
    if not text:
        return []
    addr, cap = addresses_for(config), message_cap(config)
    messages = [_text_message(addr.prompt, text, cap, "manual prompt")]
    if config.send_json and addr.json:
        messages.append(_json_message(addr.json, {"prompt": text, "source": "manual"}, cap))
    return _pack(messages, config)


def summary_datagrams(summary: Summary, config: OscConfig) -> list[bytes]:
    """The summary text and the summary image prompt, when configured."""
    addr, cap = addresses_for(config), message_cap(config)
    messages = []
    if config.send_summary and addr.summary_text:
        messages.append(_text_message(addr.summary_text, summary.text, cap, "summary"))
    if config.send_summary and addr.summary_prompt:
        messages.append(_text_message(addr.summary_prompt, summary.image_prompt, cap, "summary image prompt"))
    return _pack(messages, config)


def phrase_datagram(phrase: Phrase, config: OscConfig) -> bytes | None:
    """A closed transcript phrase, when `osc.send_transcript` is on."""
    address = addresses_for(config).phrase
    if not (config.send_transcript and address):
        return None
    return _text_message(address, phrase.text, config.max_datagram_bytes, "phrase").dgram


def level_datagram(peak: float, config: OscConfig) -> bytes | None:
    """The input peak (float32; non-finite sends 0), when `osc.send_level` is on."""
    address = addresses_for(config).level
    if not (config.send_level and address):
        return None
    return osc_message(address, float(peak) if math.isfinite(peak) else 0.0).dgram


def heartbeat_datagram(count: int, config: OscConfig) -> bytes | None:
    """A heartbeat carrying a wrapping int32 counter (lost heartbeats show as gaps)."""
    address = addresses_for(config).heartbeat
    return osc_message(address, count % 2**31).dgram if address else None


def panic_datagrams(on: bool, config: OscConfig) -> list[bytes]:
    """Panic on: the safe prompt on the prompt address, then the flag 1; off: the flag 0."""
    addr, cap = addresses_for(config), message_cap(config)
    messages = [_text_message(addr.prompt, config.panic_prompt, cap, "panic prompt")] if on else []
    if addr.panic:
        messages.append(osc_message(addr.panic, int(on)))
    return _pack(messages, config)


def freeze_datagram(on: bool, config: OscConfig) -> bytes | None:
    """The freeze flag, 1 or 0, for receivers that hold their image themselves."""
    address = addresses_for(config).freeze
    return osc_message(address, int(on)).dgram if address else None


Report = Callable[[TargetStatus | Status], None]
Held = Literal["prompt", "summary"]  # what freeze holds back: the newest of each


class OscSender:
    """Sends to every target; thread-safe; never raises on a network error (it reports them).

    No call waits for a name lookup: each target's host name is looked up on a thread of its own
    (osc_targets.py); an IP address needs none and is connected at once.
    `connect` (host, port -> connected UDP socket) is that lookup; tests give a slow or failing one.
    """

    def __init__(self, config: OscConfig, report: Report | None = None, *,
                 clock: Callable[[], float] = time.monotonic, connect: Connector = connect_udp) -> None:
        self.config = config
        self._report = report
        self._clock = clock
        self._connect = connect
        self._reports = RateLimiter(REPORT_SECONDS, clock)  # per target
        self._lock = threading.Lock()
        self._looked_up = threading.Condition(self._lock)  # notified when a lookup answers
        self._targets = [Target(host, port) for host, port in config.target_list()]
        self._frozen = self._panicked = self._closed = False
        self._held: dict[Held, list[bytes]] = {}  # while frozen: the newest prompt's and summary's datagrams
        self._beats = 0
        self._last_beat = float("-inf")
        pending: list[TargetStatus | Status] = []
        with self._lock:
            for target in self._targets:
                self._look_up(target, pending)
        self._emit(pending)

    def __enter__(self) -> OscSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def frozen(self) -> bool:
        """True while prompts are held."""
        return self._frozen

    @property
    def panicked(self) -> bool:
        """True while panic blocks everything but the safe prompt."""
        return self._panicked

    def send_prompt(self, prompt: ImagePrompt) -> float | None:
        """Send a prompt; the monotonic time it left, or None when held (freeze) or blocked (panic)."""
        return self._send(prompt_datagrams(prompt, self.config), hold="prompt")

    def send_text(self, text: str) -> float | None:
        """Send a prompt typed by the operator, bypassing the brain; like send_prompt."""
        return self._send(text_datagrams(text, self.config), hold="prompt")

    def send_summary(self, summary: Summary) -> float | None:
        """Send the summary messages (held while frozen, the newest kept)."""
        return self._send(summary_datagrams(summary, self.config), hold="summary")

    def send_phrase(self, phrase: Phrase) -> float | None:
        """Send a closed transcript phrase (when configured)."""
        return self._send([d for d in [phrase_datagram(phrase, self.config)] if d])

    def send_level(self, peak: float) -> float | None:
        """Send the input level (when configured)."""
        return self._send([d for d in [level_datagram(peak, self.config)] if d])

    def heartbeat(self, *, force: bool = False) -> float | None:
        """Send a heartbeat if `osc.heartbeat_seconds` have passed (0: never); cheap to call often."""
        now = self._clock()
        with self._lock:
            due = force or 0 < self.config.heartbeat_seconds <= now - self._last_beat
            if not due or self._panicked:
                return None
            self._last_beat = now
            self._beats += 1
            count = self._beats
        return self._send([d for d in [heartbeat_datagram(count, self.config)] if d])

    def freeze(self, on: bool) -> float | None:
        """Hold prompts (the newest kept) or release them; returns when a released prompt left."""
        pending: list[TargetStatus | Status] = []
        with self._lock:
            if on == self._frozen:
                return None
            self._frozen = on
            flag = freeze_datagram(on, self.config)
            self._dispatch([flag] if flag else [], None, False, pending)
            sent_at = None
            if not on:
                held, summary = self._held.pop("prompt", []), self._held.pop("summary", [])
                sent_at = self._dispatch(held, None, False, pending)
                self._dispatch(summary, None, False, pending)
        self._emit(pending)
        return sent_at

    def panic(self, on: bool) -> float | None:
        """Panic on: the safe prompt and the flag at once, then nothing else until released."""
        with self._lock:
            if not on and not self._panicked:
                return None
            self._panicked = on
        return self._send(panic_datagrams(on, self.config), force=True)

    def statuses(self) -> list[TargetStatus]:
        """Every target's counters now."""
        with self._lock:
            now = self._clock()
            return [t.status(now) for t in self._targets]

    def wait_for_lookups(self, timeout: float | None) -> bool:
        """Wait until no target's lookup is running (True), or `timeout` (False); for a command-line send and tests."""
        with self._looked_up:
            return self._looked_up.wait_for(lambda: not any(t.looking_up for t in self._targets), timeout)

    def close(self) -> None:
        """Close every socket; later sends do nothing (a lookup still running closes what it opens)."""
        with self._lock:
            self._closed = True
            for target in self._targets:
                target.close()

    def _send(self, datagrams: list[bytes], *, hold: Held | None = None, force: bool = False) -> float | None:
        """Dispatch under the lock, then hand reports to the callback."""
        pending: list[TargetStatus | Status] = []
        with self._lock:
            sent_at = self._dispatch(datagrams, hold, force, pending)
        self._emit(pending)
        return sent_at

    def _dispatch(self, datagrams: list[bytes], hold: Held | None, force: bool,
                  pending: list[TargetStatus | Status]) -> float | None:
        """With the lock held: drop (panic), hold (freeze: the newest of its kind is kept) or send to every target."""
        if self._closed or not datagrams or self._panicked and not force:
            return None
        if hold is not None and self._frozen and not force:
            self._held[hold] = datagrams
            return None
        if not self._targets:
            return None
        for target in self._targets:
            for dgram in datagrams:
                self._send_one(target, dgram, pending)
        return self._clock()

    def _look_up(self, target: Target, pending: list[TargetStatus | Status]) -> None:
        """With the lock held: connect to an IP address at once (no lookup), or start the name's lookup on its
        own thread (its answer comes to `_answered`)."""
        target.retry_at = self._clock() + RETRY_SECONDS
        if not is_address(target.host):
            target.start_lookup(self._connect, self._answered)
            return
        try:
            outcome: Outcome = self._connect(target.host, target.port)
        except OSError as e:
            outcome = e
        self._take(target, outcome, pending)

    def _answered(self, target: Target, outcome: Outcome) -> None:
        """On the lookup's thread: the lookup's answer, under the lock."""
        pending: list[TargetStatus | Status] = []
        with self._lock:
            self._take(target, outcome, pending)
        self._emit(pending)

    def _take(self, target: Target, outcome: Outcome, pending: list[TargetStatus | Status]) -> None:
        """With the lock held: keep the socket and send what waited, or note the error (what waited is lost)."""
        target.looking_up, target.answered = False, True
        if self._closed:
            if isinstance(outcome, socket.socket):
                outcome.close()
        elif isinstance(outcome, OSError):
            target.errors += len(target.waiting)
            target.waiting.clear()
            self._note_error(target, send_error(f"cannot reach {target.name}", outcome), pending, datagram=False)
        else:
            target.sock = outcome
            while target.waiting:
                self._send_one(target, target.waiting.popleft(), pending)
        self._looked_up.notify_all()

    def _send_one(self, target: Target, dgram: bytes, pending: list[TargetStatus | Status]) -> None:
        if target.sock is None:
            if not target.looking_up and self._clock() >= target.retry_at:
                self._look_up(target, pending)
            if not target.answered:  # the first lookup is running: the datagram waits for the address
                target.errors += target.wait(dgram)
                return
            target.errors += 1  # unresolvable: this datagram is lost too
            self._reports.hold(target.name)
            target.last_error_at = self._clock()
            return
        try:
            target.sock.send(dgram)
        except OSError as e:  # ECONNREFUSED from an earlier datagram's ICMP, no route, full buffer...
            self._note_error(target, send_error(target.name, e), pending)
            return
        target.sent += 1
        target.last_send = self._clock()

    def _note_error(self, target: Target, message: str, pending: list[TargetStatus | Status], *,
                    datagram: bool = True) -> None:
        """Count a lost datagram; report the error unless this target reported one under REPORT_SECONDS ago."""
        now = self._clock()
        target.errors += datagram
        target.last_error, target.last_error_at = message, now
        held = self._reports.allow(target.name)
        if held is None:
            log.debug("OSC %s (not reported: rate limit)", message)
            return
        more = f" ({held + datagram} errors since the last report)" if held + datagram > 1 else ""
        log.warning("OSC %s%s", message, more)
        pending += [Status("osc", f"{message}{more}", "warning"), target.status(now)]

    def _emit(self, pending: list[TargetStatus | Status]) -> None:
        """Hand reports to the callback, outside the lock (it may call back into the sender)."""
        if self._report is not None:
            for item in pending:
                self._report(item)
