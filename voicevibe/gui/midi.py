"""The window's MIDI panel: the controller port, the mapping (shown, editable, saved) and MIDI learn.

MIDI learn, as in Daydream Scope: press a control's "Learn", then move a knob or hit a pad; the
binding shows at once and goes into the settings (`midi.mapping`), so it is back at the next
launch. Buttons (panic, cues...) act at once on the MIDI reading thread through the window's thread-safe
`command` (the panic, freeze and pause buttons follow the app's state at the next poll); knobs move
their slider on the Tk thread (at the next poll, as the meters do), which applies and remembers the
value like a mouse drag. Learned bindings are brought up to date on the Tk thread.
"""

from __future__ import annotations

import logging
import queue
import time
import tkinter as tk

import customtkinter as ctk

from voicevibe.events import (
    Command,
    Freeze,
    Panic,
    PauseBrain,
    SeedLock,
    SetGain,
    SetGate,
    SetHistory,
    SetRate,
    SetTransition,
    Status,
)
from voicevibe.gui.host import WindowHost
from voicevibe.gui.widgets import AMBER, FONT, FONT_SMALL, GREY, RED, title
from voicevibe.midi.input import MidiError, MidiInput, match_port
from voicevibe.midi.mapping import CONTINUOUS_CONTROLS, CONTROLS, MappingError
from voicevibe.midi.router import Learned

log = logging.getLogger(__name__)

LEARN_SECONDS = 10.0  # an armed control gives up after this long (Scope: "No MIDI input detected")
QUEUE_SIZE = 500
CUE_CONTROLS = 9  # cue1 ... cue9 get a row (any cueN can be typed into the mapping)
SLIDERS = {SetGain: ("gain", "db"), SetGate: ("gate", "threshold"), SetHistory: ("history", "seconds"),
           SetRate: ("rate", "seconds")}


class MidiPanel:
    """The MIDI section of the window's left column."""

    def __init__(self, w: WindowHost, parent: tk.Misc) -> None:
        self.w = w
        self._polls = 0
        self._queue: queue.Queue = queue.Queue(QUEUE_SIZE)
        self.armed: str | None = None
        self._armed_until = 0.0
        self.bindings: dict[str, ctk.CTkLabel] = {}
        title(parent, "MIDI").pack(fill="x", padx=10, pady=3)
        row = ctk.CTkFrame(parent, fg_color="transparent")
        row.pack(fill="x", padx=10, pady=3)
        self.port_menu = ctk.CTkOptionMenu(row, values=["(no MIDI port)"], font=FONT, width=380,
                                           command=self.select_port)
        self.port_menu.pack(side="left")
        ctk.CTkButton(row, text="Refresh", font=FONT, width=100, command=self.refresh_ports).pack(side="left", padx=8)
        self.state = ctk.CTkLabel(parent, text="", font=FONT_SMALL, anchor="w", wraplength=600, justify="left")
        self.state.pack(fill="x", padx=10)
        grid = ctk.CTkFrame(parent, fg_color="transparent")
        grid.pack(fill="x", padx=10, pady=3)
        controls = [*CONTROLS, *(f"cue{n}" for n in range(1, CUE_CONTROLS + 1))]
        for index, control in enumerate(controls):
            cell = ctk.CTkFrame(grid, fg_color="transparent")
            cell.grid(row=index // 2, column=index % 2, sticky="w", padx=2, pady=1)
            ctk.CTkButton(cell, text="Learn", font=FONT_SMALL, width=56, height=24, fg_color=GREY,
                          command=lambda c=control: self.arm(c)).pack(side="left")
            ctk.CTkLabel(cell, text=control, font=FONT_SMALL, width=86, anchor="w").pack(side="left", padx=4)
            self.bindings[control] = ctk.CTkLabel(cell, text="-", font=FONT_SMALL, width=110, anchor="w")
            self.bindings[control].pack(side="left")
        row = ctk.CTkFrame(parent, fg_color="transparent")
        row.pack(fill="x", padx=10, pady=3)
        self.mapping = ctk.CTkEntry(row, font=FONT_SMALL, width=480, placeholder_text="gain=cc:1:7, panic=note:10:36")
        self.mapping.pack(side="left")
        self.mapping.bind("<Return>", lambda _: self.apply_mapping())
        ctk.CTkButton(row, text="Apply", font=FONT_SMALL, width=70, command=self.apply_mapping).pack(side="left",
                                                                                                    padx=6)
        self.counts = ctk.CTkLabel(parent, text="", font=FONT_SMALL, anchor="w")
        self.counts.pack(fill="x", padx=10)
        try:
            self.input: MidiInput | None = MidiInput(w.config.midi, self._on_command, report=self._report,
                                                     on_learn=self._queue_put, state=self._state).start()
        except MidiError as e:
            self.input = None
            self.state.configure(text=f"MIDI off: {e}", text_color=AMBER)
        self._show_mapping(w.config.midi.mapping)
        self.refresh_ports()

    # ---------- any thread ----------

    def _queue_put(self, item: object) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            log.warning("MIDI: the window is not keeping up; %s dropped", type(item).__name__)

    def _on_command(self, command: Command) -> None:
        """The MIDI reading thread: a button acts now; a knob waits for the Tk thread (it moves a slider)."""
        if not isinstance(command, (*SLIDERS, SetTransition)):
            self.w.command(command)
        self._queue_put(command)

    def _report(self, status: Status) -> None:
        self._queue_put(status)

    def _state(self, kind: type[Command]) -> bool:
        """The truth of a toggle, from the sender and the brain (not the buttons: they follow at the poll)."""
        osc = self.w.controls.osc
        return {Panic: osc.panicked, Freeze: osc.frozen, PauseBrain: self.w.controls.engines.brain.paused,
                SeedLock: osc.seeds.locked}.get(kind, False)

    # ---------- Tk thread ----------

    def poll(self) -> None:
        """Bring the window up to date with what MIDI did (called from the window's poll)."""
        for _ in range(QUEUE_SIZE):
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            self._sync(item)
        if self.armed is not None and time.monotonic() > self._armed_until:
            self.arm(None)
            self.w.show_message("MIDI learn: no MIDI input detected — move a knob or press a pad", "warning")
        self._polls += 1
        if self.input is not None and self._polls % 25 == 0:
            counts = self.input.counts
            self.counts.configure(text=f"MIDI messages: {counts['handled']} acted on, {counts['unmapped']} unmapped, "
                                       f"{counts['malformed']} malformed (ignored)")

    def _sync(self, item: object) -> None:
        w = self.w
        if isinstance(item, Learned):
            self.armed = None
            w.remember("midi", "mapping", item.mapping)
            self._show_mapping(item.mapping)
            w.show_message(f"MIDI learn: {item.binding.control} = {item.binding.source}", "info")
        elif isinstance(item, Status):
            colour = {"error": RED, "warning": AMBER}.get(item.level, "gray85")
            self.state.configure(text=item.message, text_color=colour)
            w.on_status(item)
        elif type(item) in SLIDERS:
            name, field = SLIDERS[type(item)]
            getattr(w.ui, name).set(getattr(item, field))  # applies and remembers, like a drag
        elif isinstance(item, SetTransition):
            w.ui.transition.set(item.seconds)

    def arm(self, control: str | None) -> None:
        """MIDI learn: the next knob or pad binds `control` (None: disarm)."""
        if self.input is None:
            self.w.show_message("MIDI is off: set midi.backend (see the MIDI panel)", "warning")
            return
        self.input.learn(control)
        self.armed = control
        self._armed_until = time.monotonic() + LEARN_SECONDS
        if control is not None:
            kind = "move a knob or fader" if control in CONTINUOUS_CONTROLS else "hit a pad or button"
            self.w.show_message(f"MIDI learn: listening for {control} — {kind}", "info")

    def apply_mapping(self) -> None:
        """The typed mapping replaces the current one (a bad entry is named, nothing changes)."""
        text = self.mapping.get().strip()
        try:
            if self.input is not None:
                self.input.set_mapping(text)
            else:
                from voicevibe.midi.mapping import parse_mapping

                parse_mapping(text)
        except MappingError as e:
            self.w.show_message(f"MIDI mapping not changed: {e}", "error")
            return
        self.w.remember("midi", "mapping", text)
        self._show_mapping(text)

    def _show_mapping(self, text: str) -> None:
        from voicevibe.midi.mapping import parse_mapping

        bound = {b.control: str(b.source) for b in parse_mapping(text)}
        for control, label in self.bindings.items():
            label.configure(text=bound.get(control, "-"), text_color=AMBER if control == self.armed else "gray85")
        if self.mapping.get().strip() != text:
            self.mapping.delete(0, "end")
            self.mapping.insert(0, text)

    def refresh_ports(self) -> None:
        """List the MIDI inputs again; the configured one is selected."""
        names: list[str] = []
        if self.input is not None:
            try:
                names = list(self.input.backend.get_input_names())
            except OSError as e:
                self.state.configure(text=f"MIDI system unavailable: {e}", text_color=RED)
        wanted = self.input.wanted if self.input is not None else self.w.config.midi.port
        values = ["(no MIDI port)", *names]
        if wanted and match_port(names, wanted) is None:
            values.append(wanted)  # the saved port, not plugged in now: it connects when it appears
        self.port_menu.configure(values=values)
        self.port_menu.set((match_port(names, wanted) or wanted) if wanted else values[0])

    def select_port(self, choice: str) -> None:
        """Listen to the chosen port (saved for the next launch)."""
        name = "" if choice.startswith("(") else choice
        if self.input is not None:
            self.input.set_port(name)
        self.w.remember("midi", "port", name)

    def close(self) -> None:
        """Close the port (before the MIDI system goes)."""
        if self.input is not None:
            self.input.close()
