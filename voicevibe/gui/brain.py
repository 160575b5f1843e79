"""The window's Brain panel: which brain answers (and the switch to the other), history, prompt rate, style,
vibe, pause and memory reset.

The switch swaps brain.model and brain.switch_model; the engines then restart only the brain
worker (the speech engine keeps its model), even mid-show: the fallback builder answers while the
other brain loads or connects. The pause button follows the brain's own state, whatever paused it
(the button, a key, MIDI or OSC control in). The "In use" row and the status bar say the same thing
(`in_use`): the model the brain worker actually loaded (the bundled 270M when the configured GGUF
is missing, a server with its URL), or the fallback prompts while it loads or when it cannot.
"""

from __future__ import annotations

import dataclasses
import tkinter as tk
from pathlib import Path

import customtkinter as ctk

from voicevibe.config import BUNDLED, NO_MODEL, BrainConfig, Config, is_server_url
from voicevibe.events import (
    BrainCommand,
    PauseBrain,
    ResetMemory,
    SetHistory,
    SetRate,
    SetStyle,
    SetVibe,
    WorkerState,
)
from voicevibe.firstrun import missing_models
from voicevibe.gui.host import WindowHost
from voicevibe.gui.widgets import AMBER, FONT, FONT_SMALL, GREY, SliderRow, title, wrap_button_text

PAD = {"padx": 10, "pady": 3}
NO_SWITCH = "No second brain set up to switch to"  # the README's Brain section says how
KEPT = {SetStyle: ("style", "name"), SetVibe: ("vibe", "text"), SetHistory: ("history_seconds", "seconds"),
        SetRate: ("prompt_interval_seconds", "seconds")}  # commands whose value is kept for the next launch


def describe_brain(config: BrainConfig) -> str:
    """Which brain a config runs, in the operator's words: "server: <model> @ <url>" or "local: <file>"."""
    from voicevibe.brain.server import api_base  # httpx is imported only by a window that shows a server

    model = config.model
    if model == NO_MODEL:
        return "none: fallback prompts only"
    if is_server_url(model):
        return f"server: {config.server_model or '(the model it lists)'} @ {api_base(model)}"
    if model == BUNDLED:
        return "local: Gemma 3 270M (bundled)"
    path = Path(model).expanduser()
    return f"local: {path.name}" if path.suffix == ".gguf" else f"local: {model}/{config.model_file}"


def in_use(state: WorkerState | None, config: Config) -> str:
    """Which model makes the prompts now, from the brain worker's own word (`state`, None before its first)."""
    brain = config.brain
    if brain.model == NO_MODEL:
        return describe_brain(brain)
    if state is not None and state.state == "ready":
        name = state.message.removeprefix("brain model: ")
        return f"server: {name}" if is_server_url(brain.model) else f"local: {name}"
    if state is not None and state.state in ("failed", "stopped"):
        return f"fallback prompts only ({state.message})"
    expected = describe_brain(brain)
    if not is_server_url(brain.model) and any(m.role == "brain" for m in missing_models(config)):
        expected = describe_brain(dataclasses.replace(brain, model=BUNDLED))  # what the worker falls back to
    return f"{expected}, loading (fallback prompts meanwhile)"


def switched(config: BrainConfig) -> BrainConfig:
    """The brain config with brain.model and brain.switch_model swapped (unchanged without a switch_model)."""
    if not config.switch_model:
        return config
    return dataclasses.replace(config, model=config.switch_model, switch_model=config.model)


def snap_rate(value: float) -> float:
    """Prompt rate: 0 (every phrase) or 2-60 s, whole seconds."""
    value = round(value)
    return 0.0 if value < 1 else float(max(2, value))


class BrainPanel:
    """The Brain section of the window's left column."""

    def __init__(self, w: WindowHost, parent: tk.Misc, styles: list[str]) -> None:
        self.w = w
        brain, ui = w.config.brain, w.ui
        title(parent, "Brain").pack(fill="x", **PAD)
        ui.brain_source = ctk.CTkLabel(parent, text="", font=FONT_SMALL, anchor="w", wraplength=600, justify="left")
        ui.brain_source.pack(fill="x", padx=10)
        ui.brain_switch = ctk.CTkButton(parent, text="", font=FONT, fg_color=GREY, command=self.switch)
        ui.brain_switch.pack(fill="x", **PAD)
        self.state: WorkerState | None = None  # the brain worker's latest
        self.show_source(brain)
        wrap_button_text(ui.brain_switch, w.fit.left_width - 60)  # its text label exists once it has a text
        ui.history = SliderRow(parent, "History", 10, 300, brain.history_seconds, steps=58,
                               on_change=lambda v: self.command(SetHistory(v)),
                               describe=lambda v: f"{v:.0f} s of transcript")
        ui.history.pack(fill="x", **PAD)
        ui.rate = SliderRow(parent, "Prompt rate", 0, 60, brain.prompt_interval_seconds, steps=60, snap=snap_rate,
                            on_change=lambda v: self.command(SetRate(v)),
                            describe=lambda v: "every phrase" if v == 0 else f"at most one every {v:.0f} s")
        ui.rate.pack(fill="x", **PAD)
        row = ctk.CTkFrame(parent, fg_color="transparent")
        row.pack(fill="x", **PAD)
        ctk.CTkLabel(row, text="Style", font=FONT, width=110, anchor="w").pack(side="left")
        ui.style = ctk.CTkOptionMenu(row, values=styles, font=FONT, width=220,
                                     command=lambda s: self.command(SetStyle(s)))
        ui.style.set(brain.style)
        ui.style.pack(side="left", padx=6)
        row = ctk.CTkFrame(parent, fg_color="transparent")
        row.pack(fill="x", **PAD)
        ctk.CTkLabel(row, text="Vibe", font=FONT, width=110, anchor="w").pack(side="left")
        ui.vibe = ctk.CTkEntry(row, font=FONT, width=360, placeholder_text="e.g. underwater, melancholic")
        if brain.vibe:
            ui.vibe.insert(0, brain.vibe)
        ui.vibe.pack(side="left", padx=6)
        ui.vibe.bind("<Return>", lambda _: self.command(SetVibe(ui.vibe.get().strip())))
        ctk.CTkButton(row, text="Set", font=FONT, width=60,
                      command=lambda: self.command(SetVibe(ui.vibe.get().strip()))).pack(side="left")
        row = ctk.CTkFrame(parent, fg_color="transparent")
        row.pack(fill="x", **PAD)
        ui.pause_button = ctk.CTkButton(row, text="Pause brain", font=FONT, fg_color=GREY, command=self.toggle_pause)
        ui.pause_button.pack(side="left")
        ctk.CTkButton(row, text="Reset memory", font=FONT, fg_color=GREY,
                      command=lambda: self.command(ResetMemory())).pack(side="left", padx=8)
        self._paused_shown = False

    @property
    def paused(self) -> bool:
        """The brain's own state: paused (memory kept) or making prompts."""
        return bool(self.w.controls.engines.brain.paused)

    def command(self, command: BrainCommand) -> None:
        """A brain command; style, vibe, history and rate are also kept in the settings."""
        kept = KEPT.get(type(command))
        if kept is not None:
            self.w.remember("brain", kept[0], getattr(command, kept[1]))
        self.w.command(command)
        self.refresh()

    def toggle_pause(self) -> None:
        """Pause the brain (memory kept), or resume it."""
        self.command(PauseBrain(not self.paused))

    def switch(self) -> None:
        """Swap brain.model and brain.switch_model (e.g. local <-> server); only the brain worker restarts."""
        brain = switched(self.w.config.brain)
        if brain is self.w.config.brain:
            return
        self.w.remember("brain", "model", brain.model)
        self.w.remember("brain", "switch_model", brain.switch_model)
        self.w.controls.engines.reconfigure(self.w.config)  # mid-show too: the fallback answers meanwhile
        self.state = None  # the other brain's worker reports from now on
        self.show_source(self.w.config.brain)
        self.w.show_message(f"brain: switching to {describe_brain(brain)}", "info")

    def show_source(self, config: BrainConfig) -> None:
        """Show the brain in use and what the switch would change to."""
        ui = self.w.ui
        ui.brain_source.configure(text=f"In use: {in_use(self.state, self.w.config)}")
        if config.switch_model:
            ui.brain_switch.configure(text=f"Switch to {describe_brain(switched(config))}", state="normal")
        else:
            ui.brain_switch.configure(text=NO_SWITCH, state="disabled")

    def show_worker(self, state: WorkerState) -> None:
        """The brain worker's state (the status bar shows the same `in_use` words)."""
        self.state = state
        self.show_source(self.w.config.brain)

    def refresh(self) -> None:
        """The pause button follows the brain's state (called at every poll; cheap when nothing changed)."""
        paused = self.paused
        if paused != self._paused_shown:
            self._paused_shown = paused
            self.w.ui.pause_button.configure(text="Resume brain" if paused else "Pause brain",
                                             fg_color=AMBER if paused else GREY)
