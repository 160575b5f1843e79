"""The performance window: one dark customtkinter window that drives a show.

The window owns the app's controls (runtime/controls.py: commands, the OSC sender, show control)
on the model workers (`Engines`, started when the window opens and kept loaded across Start/Stop),
and starts a `Pipeline` per show. Its panels (gui/inputs.py, sound.py, brain.py, screen.py,
status.py, cues.py, midi.py, firstrun.py) build their widgets and act through the `WindowHost`
protocol (gui/host.py); the window keeps the show's lifecycle, the keys, the event poll and the
settings file. Tk is touched only on the main thread: the events arrive on one queue, drained a
bounded batch every POLL_MS with `after()`, a poll cancelled when the window closes. Python's
cyclic garbage collector runs on the Tk thread only (every GC_MS), so a Tk object is never
finalised on another thread. Keyboard: space start/stop, F freeze, Esc panic, V the stage view
(gui/stage.py), 1-9 cues, Page Down/Up next/previous cue (not while typing in a text field). While
a show runs, a stray key does not end it (show.confirm_stop): Space stops it only when pressed
twice within CONFIRM_SECONDS, and Quit asks first; panic and freeze stay one key.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import queue
import threading
import time
import tkinter as tk
from collections.abc import Callable
from pathlib import Path
from tkinter import messagebox
from types import SimpleNamespace
from typing import Any

import customtkinter as ctk

from voicevibe.audio import AudioError
from voicevibe.brain.assets import AssetError, load_assets
from voicevibe.config import Config
from voicevibe.config_files import save_settings
from voicevibe.events import Command, Levels, Status, Stopped, WorkerState
from voicevibe.gui.brain import BrainPanel
from voicevibe.gui.cues import CuePanel
from voicevibe.gui.firstrun import ModelsStrip
from voicevibe.gui.inputs import InputPanel
from voicevibe.gui.midi import MidiPanel
from voicevibe.gui.platform import TouchpadScroller, fit_window, handle_quit
from voicevibe.gui.screen import ScreenPanel
from voicevibe.gui.sound import SoundPanel
from voicevibe.gui.stage import StageView
from voicevibe.gui.status import OscPanel, StatusBar
from voicevibe.hub import ModelError
from voicevibe.runtime.controls import Controls
from voicevibe.runtime.engines import Engines
from voicevibe.runtime.pipeline import Pipeline
from voicevibe.runtime.session import SessionLogError

log = logging.getLogger(__name__)

POLL_MS = 40  # event poll period: 25 Hz is smooth for meters and cheap
POLL_BATCH = 200  # most events handled per tick, so a burst never freezes the window
END_CHECK_TICKS = 5  # every 200 ms: has a rehearsal file finished?
TARGETS_TICKS = 1000 // POLL_MS  # the OSC targets' ages are redrawn once a second
SAVE_DELAY_MS = 1000  # settings are written this long after the last change
STOP_JOIN_SECONDS = 60.0  # Pipeline.stop() joins each stage with its own timeout
GC_MS = 1000  # the young generations are collected this often on the Tk thread, everything every GC_FULL ticks
GC_FULL = 30
STAGE_TICKS = 3  # the stage view redraws at most every 120 ms: big type costs, the eye does not see it
CONFIRM_SECONDS = 2.0  # a second Space within this long stops a running show (show.confirm_stop)
PipelineFactory = Callable[..., Pipeline]  # (config, controls=, input_spec=, script=, record_audio=)


class PerformanceWindow:
    """The operator's window: input, sound, brain, the screen, OSC, cues, MIDI, status; it runs the shows."""

    def __init__(self, config: Config, root: ctk.CTk, *, input_spec: str | None = None,
                 pipeline_factory: PipelineFactory = Pipeline, controls: Controls | None = None,
                 settings_file: Path | None = None) -> None:
        self.config, self.root = config, root
        self.pipeline_factory = pipeline_factory
        self.settings_file = settings_file
        self._gc_was_enabled = gc.isenabled()
        gc.disable()  # collected on this thread by _collect(): Tk objects are finalised here only
        self._gc_ticks = 0
        self.controls = controls or Controls(config, Engines(config))
        self.pipeline: Pipeline | None = None  # the running show
        self._ending: Pipeline | None = None  # a show being stopped: its last events are still shown
        self._stopper: threading.Thread | None = None
        self._changed: dict[str, set[str]] = {}
        self._save_id: str | None = None
        self._poll_id: str | None = None
        self._ticks = 0
        self.closed = False
        self.stage: StageView | None = None  # the performer's view, when open
        self._stop_asked = -CONFIRM_SECONDS  # when Space last asked to stop a running show
        root.title("VoiceVibe")
        self.fit = fit_window(root.winfo_screenwidth(), root.winfo_screenheight())
        root.geometry(self.fit.geometry)
        root.protocol("WM_DELETE_WINDOW", self.quit)
        handle_quit(root, self.quit)  # Cmd-Q closes cleanly instead of Tcl_Exit(0)
        self.touchpad = TouchpadScroller(root)
        self.touchpad.bind()  # Tk 9 on macOS: trackpad scrolling of the left column
        self.ui = SimpleNamespace()
        root.grid_columnconfigure(1, weight=1)
        root.grid_rowconfigure(1, weight=1)  # row 0: the first-launch strip, when models are missing
        left = ctk.CTkScrollableFrame(root, width=self.fit.left_width)
        left.grid(row=1, column=0, sticky="nsew", padx=(8, 4), pady=8)
        right = ctk.CTkFrame(root)
        right.grid(row=1, column=1, sticky="nsew", padx=(4, 8), pady=8)
        self.inputs = InputPanel(self, left, on_start=self.toggle_running,
                                 can_rescan=lambda: self.pipeline is None and self._ending is None)
        self.sound = SoundPanel(self, left)
        self.brain = BrainPanel(self, left, _style_names(config))
        self.screen = ScreenPanel(self, right, on_stage=self.toggle_stage)
        osc = ctk.CTkFrame(self.screen.lower, fg_color="transparent")  # below the show's cues, scrolled with them
        osc.grid(row=2, column=0, sticky="ew", padx=0, pady=(0, 4))
        self.osc_panel = OscPanel(self, osc)
        self.status = StatusBar(self, root)
        self.models = ModelsStrip(self, root)  # first launch: missing models, a Download button
        self.cues = CuePanel(self, self.screen.lower)
        self.midi = MidiPanel(self, left)
        self.views: dict[type, Callable[[Any], None]] = {
            **self.sound.views(), **self.screen.views(), **self.osc_panel.views(), **self.status.views(),
            WorkerState: self.on_worker}
        for key in ("<space>", "<Key-f>", "<Key-F>", "<Escape>", "<Key-v>", "<Key-V>"):
            root.bind(key, self._on_key)
        self.inputs.refresh_devices()
        self.inputs.preselect(config.audio.input if input_spec is None else input_spec)
        self._poll_id = root.after(POLL_MS, self._poll)
        self._gc_id: str | None = root.after(GC_MS, self._collect)
        self.engines.start()  # the models load now, shown in the status bar, and stay loaded
        # Everything built so far (modules, widgets) lives as long as the window: freeze it out of the collector,
        # so a full collection scans only what came later (40 ms -> under 1 ms here: bench/RESULTS-workers.md).
        gc.collect()
        gc.freeze()

    @property
    def engines(self) -> Engines:
        """The model workers (they outlive every show)."""
        return self.controls.engines

    # ---------- the show ----------

    def toggle_running(self) -> None:
        """Start the show, or stop it."""
        if self.pipeline is None:
            self.start()
        else:
            self.stop()

    def start(self) -> None:
        """Build and start a show from the current settings and input."""
        if self.pipeline is not None or self._ending is not None:
            return
        try:
            spec, script = self.inputs.selected()
        except AudioError as e:
            self.show_message(str(e), "error")
            return
        live = self.inputs.mode == "Microphone"
        if live:
            self.remember("audio", "input", spec)  # a rehearsal file is not kept: the next show is live
        record = {"on": True, "off": False}.get(self.config.session.record_audio, spec is not None and live)
        try:
            self.engines.reconfigure(self.config)  # reloads a model only if its settings changed
            self.pipeline = self.pipeline_factory(self.config, controls=self.controls, input_spec=spec, script=script,
                                                  record_audio=record)
            self.pipeline.start()
        except (AudioError, AssetError, ModelError, SessionLogError, ValueError, OSError) as e:
            self.pipeline = None
            self.show_message(f"cannot start: {e}", "error")
            return
        self.inputs.show_running("running")
        self.show_message("starting…", "info")

    def stop(self) -> None:
        """Stop the show in a helper thread (it joins the show's threads, releases the device and closes the
        log); the window keeps polling until its Stopped event arrives."""
        pipeline, self.pipeline = self.pipeline, None
        if pipeline is None:
            return
        self.show_message("stopping…", "info")
        self.inputs.show_running("stopping")
        self._ending = pipeline
        self._stopper = threading.Thread(target=pipeline.stop, name="gui-stop")  # touches no widget
        self._stopper.start()

    def confirm_stop(self) -> None:
        """Space: start the show, or stop it; while it runs (show.confirm_stop) only a second press within
        CONFIRM_SECONDS stops it, so a stray key never ends the show."""
        now = time.monotonic()
        if self.pipeline is None or not self.config.show.confirm_stop or now - self._stop_asked <= CONFIRM_SECONDS:
            self._stop_asked = -CONFIRM_SECONDS
            self.toggle_running()
            return
        self._stop_asked = now
        self.show_message(f"the show is running: press Space again within {CONFIRM_SECONDS:.0f} s to stop it",
                          "warning")

    def quit(self) -> None:
        """Cmd-Q, Quit from the Dock, the window's close button: while a show runs (show.confirm_stop) ask first."""
        if self.pipeline is not None and self.config.show.confirm_stop and not self.ask_quit():
            return
        self.close()

    def ask_quit(self) -> bool:
        """The dialog that asks whether to stop the running show and quit."""
        return bool(messagebox.askyesno("Quit VoiceVibe?", "A show is running. Stop it and quit?", parent=self.root,
                                        icon="warning", default="no"))

    def toggle_stage(self) -> None:
        """Open the stage view (the performer's confidence monitor), or close it."""
        if self.stage is None:
            self.stage = StageView(self.root, on_key=self._on_key)
            self.ui.stage_button.configure(text="Close stage view (V)")
        else:
            self.stage.close()
            self.stage = None
            self.ui.stage_button.configure(text="Stage view (V)")

    def _finish_stop(self) -> None:
        """The stopped show's last event has been shown: ready to start again."""
        if self._stopper is not None:
            self._stopper.join(STOP_JOIN_SECONDS)
        self._ending = self._stopper = None
        self.inputs.show_running("stopped")

    # ---------- the host's side (gui/host.py) ----------

    def command(self, command: Command) -> None:
        """Carry out an operator's command, show running or not (any thread: MIDI buttons act from the MIDI
        reading thread)."""
        self.controls.apply(command)

    def remember(self, section: str, key: str, value: str | float | bool | None) -> None:
        """Apply a changed setting to the config and save it shortly (debounced)."""
        part = dataclasses.replace(getattr(self.config, section), **{key: value})
        self.config = dataclasses.replace(self.config, **{section: part})
        self._changed.setdefault(section, set()).add(key)
        if self._save_id is not None:
            self.root.after_cancel(self._save_id)
        self._save_id = self.root.after(SAVE_DELAY_MS, self.save_settings)

    def show_message(self, text: str, level: str = "info") -> None:
        """The status bar's message line."""
        self.status.message(text, level)
        getattr(log, {"error": "error", "warning": "warning"}.get(level, "info"))("%s", text)

    def on_worker(self, state: WorkerState) -> None:
        """A model worker's state: the status bar, and the brain row (the one truth of which model answers)."""
        self.status.show_worker(state)
        if state.stage == "brain":
            self.brain.show_worker(state)

    def on_status(self, status: Status) -> None:
        """A Status: its part of the status bar, and the message line for problems and other stages."""
        if self.status.show_status(status):
            self.show_message(f"[{status.stage}] {status.message}", status.level)

    def save_settings(self) -> None:
        """Write the settings the operator changed (they come back next launch)."""
        self._save_id = None
        if self._changed:
            try:
                path = save_settings(self.config, self._changed, self.settings_file)
                log.debug("settings saved to %s", path)
            except OSError as e:
                self.show_message(f"cannot save settings: {e}", "warning")

    # ---------- keys ----------

    def _on_key(self, event: tk.Event) -> str | None:
        if isinstance(event.widget, (tk.Entry, tk.Text)) and event.keysym != "Escape":
            return None  # typing a space or an F in a text field
        action = {"space": self.confirm_stop, "f": self.screen.toggle_freeze, "F": self.screen.toggle_freeze,
                  "Escape": self.screen.toggle_panic, "v": self.toggle_stage, "V": self.toggle_stage}.get(event.keysym)
        if action is None:
            return None  # another key pressed in the stage view
        action()
        return "break"

    # ---------- events ----------

    def _collect(self) -> None:
        """The garbage collector's run, on the Tk thread: the young generations, and now and then all."""
        self._gc_ticks += 1
        gc.collect(2 if self._gc_ticks % GC_FULL == 0 else 1)
        self._gc_id = self.root.after(GC_MS, self._collect)

    def _poll(self) -> None:
        """Handle up to POLL_BATCH events, then look again in POLL_MS."""
        if self._poll_id is not None:
            self.root.after_cancel(self._poll_id)  # called directly (a test): keep a single poll scheduled
        self._poll_id = None
        pipeline = self.pipeline or self._ending
        queues = [self.engines.events]
        if pipeline is not None and pipeline.events is not self.engines.events:
            queues.append(pipeline.events)  # a stand-in show with a queue of its own (tests)
        levels = None
        for events in queues:
            for _ in range(POLL_BATCH):
                try:
                    item = events.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, Levels):
                    levels = item  # meters show only the newest block of a tick
                else:
                    self.handle(item)
        if levels is not None:
            self.sound.show_levels(levels)
        self.screen.refresh()
        self.brain.refresh()
        self.models.poll()
        self.cues.refresh()
        if self.stage is not None and self._ticks % STAGE_TICKS == 0 and self.stage.shown != self.screen.version:
            self.stage.show(self.screen.version, self.screen.latest_lines(), self.screen.latest_prompt)
        self.midi.poll()
        self._ticks += 1
        if self._ticks % TARGETS_TICKS == 0:
            self.ui.targets.refresh()
        if (pipeline is not None and pipeline is self.pipeline and self._ticks % END_CHECK_TICKS == 0
                and self.inputs.mode == "File" and pipeline.wait(0)):
            self.show_message("rehearsal file finished", "info")
            self.stop()  # the file ended and its last prompt went out
        if not self.closed:
            self._poll_id = self.root.after(POLL_MS, self._poll)

    def handle(self, item: object) -> None:
        """Show one event in its panel; Status and Stopped also change the window's state."""
        view = self.views.get(type(item))
        if view is not None:
            view(item)
        elif isinstance(item, Status):
            self.on_status(item)
        elif isinstance(item, Stopped):
            self.on_stopped(item)
        else:
            log.debug("window ignores %s", type(item).__name__)

    def on_stopped(self, stopped: Stopped) -> None:
        """The show has finished (end of a rehearsal file, error or stop)."""
        self.show_message(f"stopped: {stopped.error}" if stopped.error else "stopped",
                          "error" if stopped.error else "info")
        if self.pipeline is not None:
            self.stop()  # it stopped itself: release it too
        else:
            self._finish_stop()

    # ---------- closing ----------

    def close(self) -> None:
        """Stop the show and the models, save settings, cancel the poll and destroy the window."""
        if self.closed:
            return
        self.closed = True
        for after_id in (self._poll_id, self._save_id, self._gc_id):
            if after_id is not None:
                self.root.after_cancel(after_id)
        self._poll_id = self._gc_id = None
        self.stop()
        if self._stopper is not None:
            self._stopper.join(STOP_JOIN_SECONDS)
        if self.stage is not None:
            self.toggle_stage()
        self.models.close()
        self.midi.close()
        self.controls.close()
        self.engines.close()
        self.save_settings()
        self.root.destroy()
        gc.unfreeze()
        gc.collect()  # the window's cycles go now, on this thread
        if self._gc_was_enabled:
            gc.enable()


def _style_names(config: Config) -> list[str]:
    """The style presets the brain knows (voicevibe/assets/presets.json)."""
    try:
        return list(load_assets(config.brain.blocklist_file).styles)
    except AssetError as e:
        log.warning("style presets unavailable: %s", e)
        return [config.brain.style]
