"""The window's show panel: load a show, its cues as a grid of buttons (the next one highlighted),
next/previous, seed lock, new seed, transition time; the cue keys.

The panel shows the app's `ShowControl` (runtime/controls.py makes it beside the OSC sender), so cues,
seeds and transitions work with no show running. Keys (not while typing in a text box): 1-9 and the letters a show
assigns fire cues, Page Down / Page Up (what presentation clickers send) fire the next / previous
cue. Everything here runs on the Tk thread; the show control's changes from other threads (OSC,
MIDI, the voice) show at the next poll through its `version`.
"""

from __future__ import annotations

import logging
import tkinter as tk
from tkinter import filedialog

import customtkinter as ctk

from voicevibe.events import FireCue, NewSeed, NextCue, PreviousCue, SeedLock, SetTransition
from voicevibe.gui.host import WindowHost
from voicevibe.gui.widgets import AMBER, BLUE, FONT, FONT_SMALL, GREY, SliderRow, title
from voicevibe.show.control import ShowControl
from voicevibe.show.file import ShowError, ShowFile

log = logging.getLogger(__name__)

COLUMNS = 5  # cue buttons per row
NEXT_COLOUR, LAST_COLOUR, CUE_COLOUR = AMBER, BLUE, GREY
CLICKER_KEYS: dict[str, type[NextCue | PreviousCue]] = {"Next": NextCue, "Prior": PreviousCue}  # Page Down / Page Up


class CuePanel:
    """The show panel in the window's right column."""

    def __init__(self, w: WindowHost, parent: tk.Misc) -> None:
        self.w = w
        self.control: ShowControl = w.controls.cues
        self.buttons: list[ctk.CTkButton] = []
        self._version = -1
        frame = ctk.CTkFrame(parent, fg_color="transparent")
        frame.grid(row=0, column=0, sticky="ew", padx=0, pady=(0, 4))  # first in the lower area
        row = ctk.CTkFrame(frame, fg_color="transparent")
        row.pack(fill="x", padx=10, pady=3)
        title(row, "Show").pack(side="left")
        load = ctk.CTkButton(row, text="Load show…", font=FONT, width=130, command=self.choose_file)
        load.pack(side="left", padx=8)
        self.name = ctk.CTkLabel(row, text="no show loaded", font=FONT_SMALL, anchor="w")
        self.name.pack(side="left", padx=6)
        self.grid = ctk.CTkFrame(frame, fg_color="transparent")
        self.grid.pack(fill="x", padx=10, pady=3)
        self.grid.grid_columnconfigure(tuple(range(COLUMNS)), weight=1, uniform="cue")  # they share the width
        row = ctk.CTkFrame(frame, fg_color="transparent")
        row.pack(fill="x", padx=10, pady=3)
        ctk.CTkButton(row, text="◀ Prev (PgUp)", font=FONT_SMALL, width=120, fg_color=GREY,
                      command=lambda: w.command(PreviousCue(via="button"))).pack(side="left")
        ctk.CTkButton(row, text="Next ▶ (PgDn)", font=FONT_SMALL, width=120, fg_color=GREY,
                      command=lambda: w.command(NextCue(via="button"))).pack(side="left", padx=6)
        self.lock = ctk.CTkSwitch(row, text="Seed lock", font=FONT_SMALL, command=self._lock_changed)
        self.lock.pack(side="left", padx=10)
        ctk.CTkButton(row, text="New seed", font=FONT_SMALL, width=100, fg_color=GREY,
                      command=lambda: w.command(NewSeed())).pack(side="left")
        self.seed = ctk.CTkLabel(row, text="", font=FONT_SMALL, anchor="w")
        self.seed.pack(side="left", padx=8)
        self.transition = w.ui.transition = SliderRow(frame, "Transition", 0.0, 10.0,
                                                      w.controls.osc.transition_seconds, steps=100,
                                                      on_change=self._transition_changed,
                                                      describe=lambda s: "cut" if s == 0 else f"{s:.1f} s blend")
        self.transition.pack(fill="x", padx=10, pady=3)
        w.root.bind("<Key>", self.on_key)
        if self.control.file is not None:
            self._show_cues(self.control.file)  # loaded at start (show.file)
        self.refresh()

    # ---------- the show ----------

    def choose_file(self) -> None:
        """A file dialog for a show file."""
        path = filedialog.askopenfilename(parent=self.w.root, title="Show file",
                                          filetypes=[("Show", "*.toml"), ("All files", "*")])
        if path:
            self.load(path)

    def load(self, path: str) -> bool:
        """Load a show file; a bad one is reported (file, cue, key) and the current show stays."""
        try:
            show = self.control.load(path)
        except ShowError as e:
            self.w.show_message(str(e), "error")
            return False
        self.w.remember("show", "file", str(path))
        self._show_cues(show)
        self.w.show_message(f"show loaded: {show.path}", "info")
        return True

    def _show_cues(self, show: ShowFile) -> None:
        """The grid of the show's cue buttons."""
        for button in self.buttons:
            button.destroy()
        self.buttons = []
        for cue in show.cues:
            key = f"[{cue.key}] " if cue.key else ""
            button = ctk.CTkButton(self.grid, text=f"{key}{cue.name}", font=FONT_SMALL, width=80, height=40,
                                   fg_color=CUE_COLOUR, border_width=3, border_color=CUE_COLOUR,
                                   command=lambda n=cue.number: self.w.command(FireCue(n, via="button")))
            button.grid(row=(cue.number - 1) // COLUMNS, column=(cue.number - 1) % COLUMNS, padx=3, pady=3,
                        sticky="ew")
            self.buttons.append(button)
        self.name.configure(text=f"{show.name} · {len(show.cues)} cues")
        self._version = -1
        self.refresh()

    def refresh(self) -> None:
        """Redraw the highlights, the seed and the transition when the show control changed (each poll)."""
        if self.control.version == self._version:
            return
        self._version = self.control.version
        for number, button in enumerate(self.buttons, 1):
            colour = NEXT_COLOUR if number == self.control.next_number else \
                LAST_COLOUR if number == self.control.last_number else CUE_COLOUR
            button.configure(fg_color=colour, border_color="#f7dc6f" if number == self.control.next_number else colour)
        seeds = self.w.controls.osc.seeds
        if bool(self.lock.get()) != seeds.locked:
            self.lock.select() if seeds.locked else self.lock.deselect()
        self.seed.configure(text=f"seed {seeds.current}" + ("" if seeds.locked else " (new each prompt)"))
        seconds = self.w.controls.osc.transition_seconds
        if abs(self.transition.value - seconds) > 1e-9:
            self.transition.slider.set(seconds)
            self.transition.value = seconds
            self.transition.label.configure(text=self.transition.describe(seconds))

    def highlighted(self) -> int | None:
        """The number of the highlighted (next) cue, from the buttons' colours."""
        for number, button in enumerate(self.buttons, 1):
            if button.cget("fg_color") == NEXT_COLOUR:
                return number
        return None

    # ---------- controls ----------

    def _lock_changed(self) -> None:
        on = bool(self.lock.get())
        self.w.remember("show", "seed_lock", on)
        self.w.command(SeedLock(on))

    def _transition_changed(self, seconds: float) -> None:
        seconds = round(seconds, 1)
        self.w.remember("show", "transition_seconds", seconds)
        self.w.command(SetTransition(seconds))

    def on_key(self, event: tk.Event) -> str | None:
        """1-9 and a show's letters fire cues; Page Down/Up next/previous; never while typing."""
        if isinstance(event.widget, (tk.Entry, tk.Text)):
            return None
        if event.keysym in CLICKER_KEYS:
            self.w.command(CLICKER_KEYS[event.keysym](via="key"))
            return "break"
        key = event.keysym.lower() if len(event.keysym) == 1 else ""
        cue = self.control.file.by_key(key) if key and self.control.file is not None else None
        if cue is not None:
            self.w.command(FireCue(cue.number, via="key"))
        elif key in "123456789" and key:
            self.w.command(FireCue(int(key), via="key"))  # no such cue: the operator is told
        else:
            return None
        return "break"
