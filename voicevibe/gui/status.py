"""The window's OSC panel (each target's counters, control in) and its status bar (the models, the engine's
figures, the message line, the session log)."""

from __future__ import annotations

import logging
import tkinter as tk
from collections.abc import Callable
from typing import Any

import customtkinter as ctk

from voicevibe.events import PipelineStats, Status, TargetStatus, WorkerState
from voicevibe.gui.brain import in_use
from voicevibe.gui.host import WindowHost
from voicevibe.gui.widgets import AMBER, FONT_SMALL, RED, TargetRows, title

log = logging.getLogger(__name__)

PAD = {"padx": 10, "pady": 3}
STATUS_CHARS = 240  # the whole text goes to the log; the first-launch strip says how to get a missing model
LEVEL_COLOURS = {"error": RED, "warning": AMBER, "info": "gray85"}


class OscPanel:
    """The OSC targets with their counters, and the control-in state."""

    def __init__(self, w: WindowHost, parent: tk.Misc) -> None:
        osc, control, ui = w.config.osc, w.config.control, w.ui
        title(parent, "OSC").pack(fill="x", **PAD)
        targets = osc.targets.strip() or "(none: nothing is sent)"
        ctk.CTkLabel(parent, text=f"targets {targets} · preset {osc.preset}", font=FONT_SMALL, anchor="w",
                     wraplength=600, justify="left").pack(fill="x", padx=10)
        ui.targets = TargetRows(parent)
        ui.targets.pack(fill="x", padx=10)
        state = f"listening on {control.host}:{control.port} (from {control.allow})" if control.enabled else "off"
        ui.control_status = ctk.CTkLabel(parent, text=f"control in: {state}", font=FONT_SMALL, anchor="w")
        ui.control_status.pack(fill="x", padx=10)
        self.ui = ui

    def views(self) -> dict[type, Callable[[Any], None]]:
        """The events this panel shows."""
        return {TargetStatus: self.ui.targets.update_status}


def clipped(text: str) -> str:
    """At most STATUS_CHARS (a few wrapped lines): the bar never takes the room of the transcript."""
    return text if len(text) <= STATUS_CHARS else text[:STATUS_CHARS - 1] + "… (the whole message is in the log)"


class StatusBar:
    """The bottom bar: speech model (with its load progress), brain, figures, message line, session log.

    Every label wraps within its share of the window's width (never cut off), and each event is said
    once: a worker's state in its own label, the message line for everything else.
    """

    def __init__(self, w: WindowHost, root: ctk.CTk) -> None:
        self.w = w
        self.ui = ui = w.ui
        bar = ctk.CTkFrame(root)
        bar.grid(row=2, column=0, columnspan=2, sticky="ew", padx=8, pady=(0, 8))
        bar.grid_columnconfigure((0, 2), weight=1, uniform="status")
        half = (w.fit.width - 220) // 2  # each half of the bar, beside the progress bar
        ui.model_status = ctk.CTkLabel(bar, text="speech: not started", font=FONT_SMALL, anchor="w", justify="left",
                                       wraplength=half)
        ui.model_status.grid(row=0, column=0, sticky="w", padx=8)
        ui.progress = ctk.CTkProgressBar(bar, width=140, mode="determinate")
        ui.progress.set(0)
        ui.progress.grid(row=0, column=1, padx=8)
        ui.brain_status = ctk.CTkLabel(bar, text=f"brain: {in_use(None, w.config)}", font=FONT_SMALL, anchor="w",
                                       justify="left", wraplength=half)
        ui.brain_status.grid(row=0, column=2, sticky="w", padx=8)
        ui.stats = ctk.CTkLabel(bar, text="speech real-time factor - · brain - · dropped blocks 0", font=FONT_SMALL,
                                anchor="w", justify="left", wraplength=half)
        ui.stats.grid(row=1, column=0, sticky="w", padx=8)
        ui.log_path = ctk.CTkLabel(bar, text="log: -", font=FONT_SMALL, anchor="w", justify="left", wraplength=half)
        ui.log_path.grid(row=1, column=2, sticky="w", padx=8)
        ui.message = ctk.CTkLabel(bar, text="ready", font=FONT_SMALL, anchor="w", justify="left",
                                  wraplength=w.fit.width - 60)
        ui.message.grid(row=2, column=0, columnspan=3, sticky="w", padx=8)

    def message(self, text: str, level: str = "info") -> None:
        """The message line."""
        self.ui.message.configure(text=clipped(text), text_color=LEVEL_COLOURS.get(level, LEVEL_COLOURS["info"]))

    def show_stats(self, stats: PipelineStats) -> None:
        """The once-a-second engine figures."""
        self.ui.stats.configure(text=f"speech real-time factor {stats.stt_rtf:.2f} · brain "
                                     f"{stats.brain_latency_ms:.0f} ms · dropped blocks {stats.dropped_blocks}")
        self.ui.log_path.configure(text=f"log: {stats.log_path}")

    def show_status(self, status: Status) -> bool:
        """A Status in its part of the bar, or (False) for the message line: each event on one line.

        The brain's statuses (a fallback note, a server's state) go to the message line: its label says
        which model answers."""
        ui = self.ui
        if status.stage == "stt":
            ui.model_status.configure(text=f"speech: {clipped(status.message)}", text_color=LEVEL_COLOURS[status.level])
        elif status.stage == "control":
            ui.control_status.configure(text=f"control in: {status.message}", text_color=LEVEL_COLOURS[status.level])
        return status.stage not in ("stt", "control")

    def show_worker(self, state: WorkerState) -> None:
        """A model worker's state: the speech engine's with its load progress."""
        ui = self.ui
        colour = RED if state.state == "failed" else AMBER if state.state in ("restarting", "starting") else "gray85"
        if state.stage == "stt":
            ui.model_status.configure(text=f"speech: {clipped(state.message)}", text_color=colour)
            if state.progress is not None:
                ui.progress.stop()
                ui.progress.configure(mode="determinate")
                ui.progress.set(state.progress)
            elif state.state in ("starting", "restarting"):
                ui.progress.configure(mode="indeterminate")
                ui.progress.start()
            else:
                ui.progress.stop()
                ui.progress.configure(mode="determinate")
                ui.progress.set(0.0)
        else:
            ui.brain_status.configure(text=f"brain: {in_use(state, self.w.config)}", text_color=colour)
        if state.state in ("restarting", "failed"):  # said in its label, coloured; logged once here
            log.warning("%s: %s", state.stage, state.message)

    def views(self) -> dict[type, Callable[[Any], None]]:
        """The events the bar shows (a Status and a WorkerState go through the window: they concern others too)."""
        return {PipelineStats: self.show_stats}
