"""MIDI mapping (pure, no ports, no imports of the app): which knob or pad drives which control, as text.

Controls follow Daydream Scope's mapping types (`continuous`, `toggle`, `trigger`):

- continuous (a CC's 0-127 over the window slider's range): gain, gate, history, rate, transition
  (SetGain, SetGate, SetHistory, SetRate, SetTransition);
- toggle (each press flips it): panic, freeze, pause, seed_lock (Panic, Freeze, PauseBrain, SeedLock);
- trigger: reset, new_seed, next, previous, cue1 ... cue99 (ResetMemory, NewSeed, NextCue, PreviousCue,
  FireCue).

A button is a Note On with velocity above 0 (velocity 0 is a release, as many pads send) or a CC
going above 0 after 0 (a CC button sends 127 then 0). The mapping is text, so it lives in the
settings file: `"gain=cc:1:7, panic=note:10:36, cue1=note:10:40"` (channels 1-16 as printed on
controllers; mido numbers them 0-15). Learn: arm a control, and the next CC (or, for a button,
Note On) binds it; a source bound to another control moves to the armed one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# The controls a knob or pad can drive (midi/router.py gives each its command), in the window's order; then cue1..cue99.
CONTINUOUS_CONTROLS = ("gain", "gate", "history", "rate", "transition")  # a CC's 0-127 over a range
TOGGLE_CONTROLS = ("panic", "freeze", "pause", "seed_lock")  # each press flips it
TRIGGER_CONTROLS = ("reset", "new_seed", "next", "previous")  # each press fires it


CONTROLS = (*CONTINUOUS_CONTROLS, *TOGGLE_CONTROLS, *TRIGGER_CONTROLS)
CUE_CONTROL = re.compile(r"cue([1-9][0-9]?)")
_SOURCE = re.compile(r"(cc|note):(\d{1,2}):(\d{1,3})")


class MappingError(ValueError):
    """A mapping entry is not CONTROL=cc|note:CHANNEL:NUMBER with a known control."""


def is_control(name: str) -> bool:
    """A control a knob or pad can drive."""
    return name in CONTROLS or bool(CUE_CONTROL.fullmatch(name))


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
        if control in CONTINUOUS_CONTROLS and kind != "cc":
            raise MappingError(f"{entry!r}: {control} is a knob or fader: it needs a cc, not a note")
        if control in bindings:
            raise MappingError(f"{entry!r}: {control} is bound twice")
        bindings[control] = Binding(control, Source(kind, channel, number))
    return tuple(bindings.values())


def format_mapping(bindings: Iterable[Binding]) -> str:
    """The mapping as text (parse_mapping reads it back)."""
    return ", ".join(f"{b.control}={b.source}" for b in bindings)


