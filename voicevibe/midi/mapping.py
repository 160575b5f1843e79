"""MIDI mapping (pure, no ports): which knob or pad drives which control, and what a message means.

Controls follow Daydream Scope's mapping types (`continuous`, `toggle`, `trigger`):

| control | type | command |
|---|---|---|
| gain, gate, history, rate, transition | continuous (a CC's 0-127 over the window slider's range) | SetGain, SetGate, SetHistory, SetRate, SetTransition |
| panic, freeze, pause, seed_lock | toggle (each press flips it) | Panic, Freeze, PauseBrain, SeedLock |
| reset, new_seed, next, previous, cue1 ... cue99 | trigger | ResetMemory, NewSeed, NextCue, PreviousCue, FireCue |

A button is a Note On with velocity above 0 (velocity 0 is a release, as many pads send) or a CC
going above 0 after 0 (a CC button sends 127 then 0). The mapping is text, so it lives in the
settings file: `"gain=cc:1:7, panic=note:10:36, cue1=note:10:40"` (channels 1-16 as printed on
controllers; mido numbers them 0-15). Learn: arm a control, and the next CC (or, for a button,
Note On) binds it; a source bound to another control moves to the armed one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from voicevibe.events import (Command, FireCue, Freeze, NewSeed, NextCue, Panic, PauseBrain, PreviousCue, ResetMemory,
                     SeedLock, SetGain, SetGate, SetHistory, SetRate, SetTransition)

MAX_CUE = 99


def _rate(seconds: float) -> SetRate:
    """Prompt rate as the window snaps it: 0 (every phrase) or 2-60 whole seconds."""
    value = round(seconds)
    return SetRate(0.0 if value < 1 else float(max(2, value)))


# control: (low, high, command from a value in that range)
CONTINUOUS: dict[str, tuple[float, float, Callable[[float], Command]]] = {
    "gain": (-24.0, 24.0, lambda v: SetGain(round(v, 1))),
    "gate": (0.0, 0.3, lambda v: SetGate(round(v, 4))),
    "history": (10.0, 300.0, lambda v: SetHistory(float(round(v)))),
    "rate": (0.0, 60.0, _rate),
    "transition": (0.0, 10.0, lambda v: SetTransition(round(v, 1))),
}
TOGGLES: dict[str, type] = {"panic": Panic, "freeze": Freeze, "pause": PauseBrain, "seed_lock": SeedLock}
TRIGGERS: dict[str, Callable[[], Command]] = {
    "reset": ResetMemory, "new_seed": NewSeed, "next": lambda: NextCue(via="midi"),
    "previous": lambda: PreviousCue(via="midi")}
CONTROLS = (*CONTINUOUS, *TOGGLES, *TRIGGERS)  # the fixed ones, in the window's order; then cue1..cueN
_CUE = re.compile(r"cue([1-9][0-9]?)")
_SOURCE = re.compile(r"(cc|note):(\d{1,2}):(\d{1,3})")


class MappingError(ValueError):
    """A mapping entry is not CONTROL=cc|note:CHANNEL:NUMBER with a known control."""


def is_control(name: str) -> bool:
    """A control a knob or pad can drive."""
    return name in CONTROLS or bool(_CUE.fullmatch(name))


@dataclass(frozen=True)
class Source:
    """Where a message comes from: a CC or a note number on a channel (1-16)."""

    kind: str  # "cc" or "note"
    channel: int
    number: int

    def __str__(self) -> str:
        return f"{self.kind}:{self.channel}:{self.number}"


@dataclass(frozen=True)
class Binding:
    """One control driven by one source."""

    control: str
    source: Source


def parse_mapping(text: str) -> tuple[Binding, ...]:
    """Parse "control=cc:1:7, ..."; MappingError names the bad entry."""
    bindings: dict[str, Binding] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        control, eq, source = (part.strip().lower() for part in entry.partition("="))
        match = _SOURCE.fullmatch(source)
        if not eq or not is_control(control) or not match:
            raise MappingError(f"{entry!r} is not CONTROL=cc:CHANNEL:NUMBER or CONTROL=note:CHANNEL:NUMBER with a "
                               "control among " + ", ".join(CONTROLS) + ", cue1 ... cue99")
        kind, channel, number = match[1], int(match[2]), int(match[3])
        if not (1 <= channel <= 16 and 0 <= number <= 127):
            raise MappingError(f"{entry!r}: channels are 1-16, numbers 0-127")
        if control in CONTINUOUS and kind != "cc":
            raise MappingError(f"{entry!r}: {control} is a knob or fader: it needs a cc, not a note")
        if control in bindings:
            raise MappingError(f"{entry!r}: {control} is bound twice")
        bindings[control] = Binding(control, Source(kind, channel, number))
    return tuple(bindings.values())


def format_mapping(bindings: Iterable[Binding]) -> str:
    """The mapping as text (parse_mapping reads it back)."""
    return ", ".join(f"{b.control}={b.source}" for b in bindings)


@dataclass(frozen=True)
class Learned:
    """MIDI learn bound a control."""

    binding: Binding
    mapping: str  # the whole mapping now, as text


class MidiRouter:
    """mido messages in, commands out; learn mode; counts what it ignores, never raises on a message."""

    def __init__(self, bindings: Iterable[Binding] = (), state: Callable[[type], bool] = lambda kind: False) -> None:
        self.bindings = {b.control: b for b in bindings}
        self.state = state  # the current on/off of a toggle's command type (the front end knows)
        self.armed: str | None = None
        self.handled = self.unmapped = self.malformed = 0
        self._cc_last: dict[Source, int] = {}
        self._by_source = {b.source: b for b in self.bindings.values()}

    @property
    def mapping(self) -> str:
        """The current mapping as text."""
        return format_mapping(self.bindings.values())

    def set_mapping(self, bindings: Iterable[Binding]) -> None:
        """Replace every binding (an edited mapping)."""
        self.bindings = {b.control: b for b in bindings}
        self._by_source = {b.source: b for b in self.bindings.values()}

    def learn(self, control: str | None) -> None:
        """Arm a control: the next suitable message binds it (None disarms)."""
        if control is not None and not is_control(control):
            raise MappingError(f"{control!r} is not a control")
        self.armed = control

    def handle(self, message: Any) -> Command | Learned | None:
        """What one message means: a command, a learned binding, or None (a release, unmapped, malformed)."""
        try:
            source, value = _read(message)
        except (AttributeError, TypeError, ValueError):
            self.malformed += 1
            return None
        if source is None:
            self.unmapped += 1  # clock, sysex, pitch bend, note off...: not a control
            return None
        if self.armed is not None:
            learned = self._learn(source, value)
            if learned is not None:
                return learned
        binding = self._by_source.get(source)
        if binding is None:
            self.unmapped += 1
            return None
        command = self._command(binding.control, source, value)
        if command is not None:
            self.handled += 1
        return command

    def _learn(self, source: Source, value: int) -> Learned | None:
        control = self.armed
        assert control is not None
        if value <= 0 or control in CONTINUOUS and source.kind != "cc":
            return None  # a release, or a pad for a knob: keep listening
        for other in [b for b in self.bindings.values() if b.source == source or b.control == control]:
            del self.bindings[other.control]
        binding = Binding(control, source)
        self.bindings[control] = binding
        self._by_source = {b.source: b for b in self.bindings.values()}
        self.armed = None
        if source.kind == "cc":
            self._cc_last[source] = value  # the learning press is not also a button press
        return Learned(binding, self.mapping)

    def _command(self, control: str, source: Source, value: int) -> Command | None:
        if control in CONTINUOUS:
            low, high, make = CONTINUOUS[control]
            return make(low + (high - low) * value / 127.0)
        if source.kind == "cc":
            last, self._cc_last[source] = self._cc_last.get(source, 0), value
            if last > 0:
                return None  # still held
        if value <= 0:
            return None  # a release
        if control in TOGGLES:
            kind = TOGGLES[control]
            return kind(not self.state(kind))
        if control in TRIGGERS:
            return TRIGGERS[control]()
        match = _CUE.fullmatch(control)
        return FireCue(int(match[1]), via="midi") if match else None


def _read(message: Any) -> tuple[Source | None, int]:
    """(source, value) of a CC or Note On (velocity 0 is a release, value 0); (None, 0) for anything else."""
    kind = message.type
    if kind == "control_change":
        channel, number, value = message.channel, message.control, message.value
        source = Source("cc", _channel(channel), _seven_bit(number))
    elif kind == "note_on":
        channel, number, value = message.channel, message.note, message.velocity
        source = Source("note", _channel(channel), _seven_bit(number))
    else:
        return None, 0
    return source, _seven_bit(value)


def _channel(channel: Any) -> int:
    if not isinstance(channel, int) or not 0 <= channel <= 15:
        raise ValueError(f"MIDI channel {channel!r}")
    return channel + 1


def _seven_bit(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 127:
        raise ValueError(f"MIDI data byte {value!r}")
    return value
