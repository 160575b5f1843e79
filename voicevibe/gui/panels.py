"""Layout of the performance window, and how each engine event shows in it.

`build_panels` creates the widgets on the Tk thread and returns them by name; the `show_*`
functions draw one event into them (the window calls them from its event poll). The window
(gui.py) owns the behaviour.
"""

from __future__ import annotations

from types import SimpleNamespace
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import customtkinter as ctk

from voicevibe.events import (CueFired, ImagePrompt, Levels, PhraseEnd, PipelineStats, ResetMemory, SetHistory, SetRate,
                     SetStyle, SetVibe, Status, Summary, TargetStatus, WorkerState, Word)
from voicevibe.gui.brain import brain_source_row
from voicevibe.gui.widgets import (AMBER, BLUE, FONT, FONT_BIG_BUTTON, FONT_SMALL, FONT_TRANSCRIPT, GREEN, GREY, RED,
                          SHORTCUTS, LevelMeter, PromptList, SliderRow, TargetRows, db_to_linear, format_dbfs, title)

if TYPE_CHECKING:
    from voicevibe.gui.window import PerformanceWindow

PAD = {"padx": 10, "pady": 3}
TRANSCRIPT_MAX_LINES = 400
PHRASE_MARK = "  ⏎\n"  # how a phrase end shows in the transcript


def snap_rate(value: float) -> float:
    """Prompt rate: 0 (every phrase) or 2-60 s, whole seconds."""
    value = round(value)
    return 0.0 if value < 1 else float(max(2, value))


def build_panels(w: PerformanceWindow, root: ctk.CTk) -> SimpleNamespace:
    """Create every widget of the window; returns them as attributes."""
    ui = SimpleNamespace()
    root.grid_columnconfigure(1, weight=1)
    root.grid_rowconfigure(1, weight=1)  # row 0: the first-launch strip (gui_firstrun), when models are missing
    left = ctk.CTkScrollableFrame(root, width=w.fit.left_width)
    left.grid(row=1, column=0, sticky="nsew", padx=(8, 4), pady=8)
    right = ctk.CTkFrame(root)
    right.grid(row=1, column=1, sticky="nsew", padx=(4, 8), pady=8)
    _input_panel(w, left, ui)
    _sound_panel(w, left, ui)
    _brain_panel(w, left, ui)
    _show_panel(w, right, ui)
    osc = ctk.CTkFrame(right, fg_color="transparent")
    osc.grid(row=7, column=0, sticky="ew", padx=0, pady=(0, 4))
    _osc_panel(w, osc, ui)
    _status_bar(root, ui)
    ui.left, ui.right = left, right  # the cue and MIDI panels (gui_cues.py, gui_midi.py) add themselves here
    return ui


def _input_panel(w: PerformanceWindow, parent: Any, ui: SimpleNamespace) -> None:
    title(parent, "Input").pack(fill="x", **PAD)
    ui.mode = ctk.CTkSegmentedButton(parent, values=["Microphone", "File", "Script"], font=FONT)
    ui.mode.set("Microphone")
    ui.mode.pack(fill="x", **PAD)
    row = ctk.CTkFrame(parent, fg_color="transparent")
    row.pack(fill="x", **PAD)
    ui.device_menu = ctk.CTkOptionMenu(row, values=["(no input device)"], font=FONT, width=420,
                                       command=lambda _: ui.mode.set("Microphone"))
    ui.device_menu.pack(side="left")
    ctk.CTkButton(row, text="Refresh", font=FONT, width=100, command=w.refresh_devices).pack(side="left", padx=8)
    ui.device_note = ctk.CTkLabel(parent, text="", font=FONT_SMALL, anchor="w", wraplength=600, justify="left")
    ui.device_note.pack(fill="x", padx=10)
    row = ctk.CTkFrame(parent, fg_color="transparent")
    row.pack(fill="x", **PAD)
    ctk.CTkButton(row, text="Choose file…", font=FONT, width=140, command=w.choose_file).pack(side="left")
    ui.file_path = ctk.StringVar(value="")
    ctk.CTkLabel(row, textvariable=ui.file_path, font=FONT_SMALL, anchor="w").pack(side="left", padx=8)
    ctk.CTkLabel(parent, text="Script: one phrase a line (Script mode); or type a phrase for the brain:",
                 font=FONT_SMALL, anchor="w").pack(fill="x", padx=10)
    ui.script = ctk.CTkTextbox(parent, height=60, font=FONT_SMALL)
    ui.script.pack(fill="x", **PAD)
    row = ctk.CTkFrame(parent, fg_color="transparent")
    row.pack(fill="x", **PAD)
    ui.say = ctk.CTkEntry(row, font=FONT, placeholder_text="a phrase, as if spoken", width=480)
    ui.say.pack(side="left")
    ui.say.bind("<Return>", lambda _: w.say())
    ctk.CTkButton(row, text="Say", font=FONT, width=80, command=w.say).pack(side="left", padx=8)
    ui.start_button = ctk.CTkButton(parent, text="▶ Start", font=FONT_BIG_BUTTON, height=50, fg_color=GREEN,
                                    command=w.toggle_running)
    ui.start_button.pack(fill="x", **PAD)


def _sound_panel(w: PerformanceWindow, parent: Any, ui: SimpleNamespace) -> None:
    dsp = w.config.dsp
    title(parent, "Sound").pack(fill="x", **PAD)
    ui.gain = SliderRow(parent, "Gain", -24.0, 24.0, dsp.gain_db, steps=96, on_change=w.set_gain,
                        describe=lambda db: f"{db:+.1f} dB  (x{db_to_linear(db):.2f})")
    ui.gain.pack(fill="x", **PAD)
    ui.gate = SliderRow(parent, "Gate", 0.0, 0.3, dsp.gate_threshold, steps=300, on_change=w.set_gate,
                        describe=lambda v: f"{v:.3f}  ({format_dbfs(v)})")
    ui.gate.pack(fill="x", **PAD)
    ui.agc = ctk.CTkSwitch(parent, text="AGC (automatic gain)", font=FONT,
                           command=lambda: w.set_agc(bool(ui.agc.get())))
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


def _brain_panel(w: PerformanceWindow, parent: Any, ui: SimpleNamespace) -> None:
    brain = w.config.brain
    title(parent, "Brain").pack(fill="x", **PAD)
    brain_source_row(w, parent, ui)
    ui.history = SliderRow(parent, "History", 10, 300, brain.history_seconds, steps=58,
                           on_change=lambda v: w.brain(SetHistory(v)), describe=lambda v: f"{v:.0f} s of transcript")
    ui.history.pack(fill="x", **PAD)
    ui.rate = SliderRow(parent, "Prompt rate", 0, 60, brain.prompt_interval_seconds, steps=60, snap=snap_rate,
                        on_change=lambda v: w.brain(SetRate(v)),
                        describe=lambda v: "every phrase" if v == 0 else f"at most one every {v:.0f} s")
    ui.rate.pack(fill="x", **PAD)
    row = ctk.CTkFrame(parent, fg_color="transparent")
    row.pack(fill="x", **PAD)
    ctk.CTkLabel(row, text="Style", font=FONT, width=110, anchor="w").pack(side="left")
    ui.style = ctk.CTkOptionMenu(row, values=w.styles, font=FONT, width=220, command=lambda s: w.brain(SetStyle(s)))
    ui.style.set(brain.style)
    ui.style.pack(side="left", padx=6)
    row = ctk.CTkFrame(parent, fg_color="transparent")
    row.pack(fill="x", **PAD)
    ctk.CTkLabel(row, text="Vibe", font=FONT, width=110, anchor="w").pack(side="left")
    ui.vibe = ctk.CTkEntry(row, font=FONT, width=360, placeholder_text="e.g. underwater, melancholic")
    if brain.vibe:
        ui.vibe.insert(0, brain.vibe)
    ui.vibe.pack(side="left", padx=6)
    ui.vibe.bind("<Return>", lambda _: w.brain(SetVibe(ui.vibe.get().strip())))
    ctk.CTkButton(row, text="Set", font=FONT, width=60,
                  command=lambda: w.brain(SetVibe(ui.vibe.get().strip()))).pack(side="left")
    row = ctk.CTkFrame(parent, fg_color="transparent")
    row.pack(fill="x", **PAD)
    ui.pause_button = ctk.CTkButton(row, text="Pause brain", font=FONT, fg_color=GREY, command=w.toggle_pause)
    ui.pause_button.pack(side="left")
    ctk.CTkButton(row, text="Reset memory", font=FONT, fg_color=GREY,
                  command=lambda: w.brain(ResetMemory())).pack(side="left", padx=8)


def _osc_panel(w: PerformanceWindow, parent: Any, ui: SimpleNamespace) -> None:
    osc, control = w.config.osc, w.config.control
    title(parent, "OSC").pack(fill="x", **PAD)
    targets = osc.targets.strip() or "(none: nothing is sent)"
    ctk.CTkLabel(parent, text=f"targets {targets} · preset {osc.preset}", font=FONT_SMALL, anchor="w",
                 wraplength=600, justify="left").pack(fill="x", padx=10)
    ui.targets = TargetRows(parent)
    ui.targets.pack(fill="x", padx=10)
    state = f"listening on {control.host}:{control.port} (from {control.allow})" if control.enabled else "off"
    ui.control_status = ctk.CTkLabel(parent, text=f"control in: {state}", font=FONT_SMALL, anchor="w")
    ui.control_status.pack(fill="x", padx=10)


def _show_panel(w: PerformanceWindow, parent: Any, ui: SimpleNamespace) -> None:
    parent.grid_columnconfigure(0, weight=1)
    row = ctk.CTkFrame(parent, fg_color="transparent")
    row.grid(row=0, column=0, sticky="ew", **PAD)
    ui.panic_button = ctk.CTkButton(row, text="PANIC (Esc)", font=FONT_BIG_BUTTON, height=56, width=300,
                                    fg_color=RED, command=w.toggle_panic)
    ui.panic_button.pack(side="left")
    ui.freeze_button = ctk.CTkButton(row, text="Freeze (F)", font=FONT_BIG_BUTTON, height=56, width=220,
                                     fg_color=GREY, command=w.toggle_freeze)
    ui.freeze_button.pack(side="left", padx=10)
    ctk.CTkLabel(row, text=SHORTCUTS.replace(" · ", "\n"), font=FONT_SMALL, anchor="w",
                 justify="left").pack(side="left", padx=10)
    title(parent, "Transcript").grid(row=1, column=0, sticky="ew", **PAD)
    ui.transcript = ctk.CTkTextbox(parent, font=FONT_TRANSCRIPT, wrap="word")
    ui.transcript.grid(row=2, column=0, sticky="nsew", **PAD)
    title(parent, "Prompts (click one to send it again)").grid(row=3, column=0, sticky="ew", **PAD)
    ui.prompts = PromptList(parent, on_click=w.resend)
    ui.prompts.grid(row=4, column=0, sticky="nsew", **PAD)
    parent.grid_rowconfigure(2, weight=1)
    parent.grid_rowconfigure(4, weight=1)
    row = ctk.CTkFrame(parent, fg_color="transparent")
    row.grid(row=5, column=0, sticky="ew", **PAD)
    ui.manual = ctk.CTkEntry(row, font=FONT, placeholder_text="type a prompt to send straight to the screen")
    ui.manual.pack(side="left", fill="x", expand=True)
    ui.manual.bind("<Return>", lambda _: w.send_manual())
    ctk.CTkButton(row, text="Send to screen", font=FONT, fg_color=BLUE,
                  command=w.send_manual).pack(side="left", padx=8)
    ui.summary = ctk.CTkLabel(parent, text="", font=FONT_SMALL, anchor="w", wraplength=760, justify="left")
    ui.summary.grid(row=6, column=0, sticky="ew", **PAD)


def _status_bar(root: ctk.CTk, ui: SimpleNamespace) -> None:
    bar = ctk.CTkFrame(root)
    bar.grid(row=2, column=0, columnspan=2, sticky="ew", padx=8, pady=(0, 8))
    ui.model_status = ctk.CTkLabel(bar, text="speech: not started", font=FONT_SMALL, anchor="w")
    ui.model_status.grid(row=0, column=0, sticky="w", padx=8)
    ui.progress = ctk.CTkProgressBar(bar, width=140, mode="determinate")
    ui.progress.set(0)
    ui.progress.grid(row=0, column=1, padx=8)
    ui.brain_status = ctk.CTkLabel(bar, text="brain: not started", font=FONT_SMALL, anchor="w")
    ui.brain_status.grid(row=0, column=2, sticky="w", padx=8)
    ui.stats = ctk.CTkLabel(bar, text="STT real-time factor - · brain - · dropped blocks 0", font=FONT_SMALL)
    ui.stats.grid(row=0, column=3, sticky="w", padx=8)
    ui.message = ctk.CTkLabel(bar, text="ready", font=FONT_SMALL, anchor="w")
    ui.message.grid(row=1, column=0, columnspan=3, sticky="w", padx=8)
    ui.log_path = ctk.CTkLabel(bar, text="log: -", font=FONT_SMALL, anchor="w")
    ui.log_path.grid(row=1, column=3, sticky="w", padx=8)


# ---------- how each event shows ----------

def show_word(ui: SimpleNamespace, word: Any) -> None:
    """Append a word piece to the transcript."""
    box = ui.transcript
    at_line_start = box.get("end-2c", "end-1c") in ("", "\n")
    box.insert("end", word.text.lstrip() if at_line_start else word.text)
    box.see("end")


def show_phrase_end(ui: SimpleNamespace, _: Any) -> None:
    """Mark a phrase end and start a new line (the oldest lines go past TRANSCRIPT_MAX_LINES)."""
    box = ui.transcript
    box.insert("end", PHRASE_MARK)
    lines = int(box.index("end-1c").split(".")[0])
    if lines > TRANSCRIPT_MAX_LINES:
        box.delete("1.0", f"{lines - TRANSCRIPT_MAX_LINES}.0")
    box.see("end")


def show_prompt(ui: SimpleNamespace, prompt: Any) -> None:
    """Add a prompt to the history with its source (and why the fallback made it), latency and style."""
    model = f" {prompt.model}" if prompt.model and prompt.source == "model" else ""
    why = f" ({prompt.reason})" if prompt.reason else ""
    ui.prompts.add(prompt, f"{prompt.source}{model}{why} · {prompt.latency_ms:.0f} ms · {prompt.style}")


def show_cue(ui: SimpleNamespace, cue: CueFired) -> None:
    """A fired cue in the prompt history (click it to send its prompt again)."""
    seed = f" · seed {cue.seed}" if cue.seed is not None else ""
    heard = f' "{cue.heard}"' if cue.heard else ""
    what = "to the brain" if cue.phrase else "sent" if cue.sent else "not sent (panic, freeze or no target)"
    ui.prompts.add(ImagePrompt(cue.text, cue.name, "", "", "cue"),
                   f"cue {cue.number} {cue.name} · {cue.via}{heard}{seed} · {what}")


def show_summary(ui: SimpleNamespace, summary: Any) -> None:
    """The slow brain's view of the session."""
    ui.summary.configure(text=f"Summary: {summary.text}")


def show_levels(ui: SimpleNamespace, levels: Any) -> None:
    """Meters before and after DSP, gate and weak-signal indicators."""
    ui.meter_in.show(levels.peak_in, levels.rms_in)
    ui.meter_out.show(levels.peak_out, levels.rms_out)
    ui.gate_label.configure(text="GATE OPEN" if levels.gate_open else "gate closed",
                            text_color=GREEN if levels.gate_open else GREY)
    ui.weak_label.configure(text="WEAK SIGNAL: check the microphone and gain" if levels.weak_signal else "")


def show_stats(ui: SimpleNamespace, stats: Any) -> None:
    """The once-a-second engine figures."""
    ui.stats.configure(text=f"STT real-time factor {stats.stt_rtf:.2f} · brain {stats.brain_latency_ms:.0f} ms"
                            f" · dropped blocks {stats.dropped_blocks}")
    ui.log_path.configure(text=f"log: {stats.log_path}")


def show_target(ui: SimpleNamespace, status: Any) -> None:
    """Per-target OSC status."""
    ui.targets.update_status(status)


def show_status(ui: SimpleNamespace, status: Status) -> bool:
    """A Status in its status-bar part; True when it also belongs on the message line."""
    if status.stage == "stt":
        ui.model_status.configure(text=f"speech: {status.message}")
    elif status.stage == "brain":
        ui.brain_status.configure(text=f"brain: {status.message}")
    elif status.stage == "control":
        ui.control_status.configure(text=f"control in: {status.message}")
    return status.level != "info" or status.stage not in ("stt", "brain", "control")


def show_worker(ui: SimpleNamespace, state: WorkerState) -> None:
    """A model worker's state in the status bar: the speech engine's with its load progress."""
    colour = RED if state.state == "failed" else AMBER if state.state in ("restarting", "starting") else "gray85"
    if state.stage == "stt":
        ui.model_status.configure(text=f"speech: {state.message}", text_color=colour)
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
        ui.brain_status.configure(text=f"brain: {state.message}", text_color=colour)
    if state.state in ("restarting", "failed"):
        ui.message.configure(text=f"[{state.stage}] {state.message}", text_color=RED if state.state == "failed"
                             else AMBER)


VIEWS: dict[type, Callable[[SimpleNamespace, Any], None]] = {
    Word: show_word, PhraseEnd: show_phrase_end, ImagePrompt: show_prompt, Summary: show_summary,
    Levels: show_levels, PipelineStats: show_stats, TargetStatus: show_target, WorkerState: show_worker,
    CueFired: show_cue,
}
