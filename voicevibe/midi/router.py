"""MIDI messages into the app's commands (pure, no ports): what each control does, and MIDI learn.

`MidiRouter` reads mido messages against a mapping (midi/mapping.py) and gives the command each one
means; it counts what it ignores and never raises on a message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

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
    SetGain,
    SetGate,
    SetHistory,
    SetRate,
    SetTransition,
)
from voicevibe.midi.mapping import CUE_CONTROL, Binding, MappingError, Source, format_mapping, is_control

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
        match = CUE_CONTROL.fullmatch(control)
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
