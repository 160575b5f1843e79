"""The window's Sound panel: gain, gate and AGC (live, kept for the next launch), the meters before and after
the DSP, the gate and the weak-signal warning."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from typing import Any

import customtkinter as ctk

from voicevibe.events import Levels, SetAgc, SetGain, SetGate
from voicevibe.gui.host import WindowHost
from voicevibe.gui.widgets import FONT, GREEN, GREY, RED, LevelMeter, SliderRow, db_to_linear, format_dbfs, title

PAD = {"padx": 10, "pady": 3}


class SoundPanel:
    """Gain and gate sliders, the AGC switch, the two meters and the gate / weak-signal labels."""

    def __init__(self, w: WindowHost, parent: tk.Misc) -> None:
        self.w = w
        dsp, ui = w.config.dsp, w.ui
        title(parent, "Sound").pack(fill="x", **PAD)
        ui.gain = SliderRow(parent, "Gain", -24.0, 24.0, dsp.gain_db, steps=96, on_change=self.set_gain,
                            describe=lambda db: f"{db:+.1f} dB  (x{db_to_linear(db):.2f})")
        ui.gain.pack(fill="x", **PAD)
        ui.gate = SliderRow(parent, "Gate", 0.0, 0.3, dsp.gate_threshold, steps=300, on_change=self.set_gate,
                            describe=lambda v: f"{v:.3f}  ({format_dbfs(v)})")
        ui.gate.pack(fill="x", **PAD)
        ui.agc = ctk.CTkSwitch(parent, text="AGC (automatic gain)", font=FONT,
                               command=lambda: self.set_agc(bool(ui.agc.get())))
        if dsp.agc:
            ui.agc.select()
        ui.agc.pack(fill="x", **PAD)
        ui.meter_in = LevelMeter(parent, "In")
        ui.meter_in.pack(fill="x", **PAD)
        ui.meter_out = LevelMeter(parent, "Out")
        ui.meter_out.pack(fill="x", **PAD)
        row = ctk.CTkFrame(parent, fg_color="transparent")
        row.pack(fill="x", **PAD)
        ui.gate_label = ctk.CTkLabel(row, text="gate closed", font=FONT, text_color=GREY, width=140, anchor="w")
        ui.gate_label.pack(side="left")
        ui.weak_label = ctk.CTkLabel(row, text="", font=FONT, text_color=RED, anchor="w")
        ui.weak_label.pack(side="left", padx=8)

    def set_gain(self, db: float) -> None:
        """Input pre-gain in dB (live)."""
        self.w.remember("dsp", "gain_db", round(db, 1))
        self.w.command(SetGain(round(db, 1)))

    def set_gate(self, threshold: float) -> None:
        """Gate opening threshold, linear peak (live)."""
        self.w.remember("dsp", "gate_threshold", round(threshold, 4))
        self.w.command(SetGate(round(threshold, 4)))

    def set_agc(self, on: bool) -> None:
        """AGC on or off (live)."""
        self.w.remember("dsp", "agc", bool(on))
        self.w.command(SetAgc(bool(on)))

    def show_levels(self, levels: Levels) -> None:
        """Meters before and after DSP, gate and weak-signal indicators."""
        ui = self.w.ui
        ui.meter_in.show(levels.peak_in, levels.rms_in)
        ui.meter_out.show(levels.peak_out, levels.rms_out)
        ui.gate_label.configure(text="GATE OPEN" if levels.gate_open else "gate closed",
                                text_color=GREEN if levels.gate_open else GREY)
        ui.weak_label.configure(text="WEAK SIGNAL: check the microphone and gain" if levels.weak_signal else "")

    def views(self) -> dict[type, Callable[[Any], None]]:
        """The events this panel shows."""
        return {Levels: self.show_levels}
