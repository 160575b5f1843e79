"""The performance window: one dark customtkinter window that drives a `Pipeline`.

Tk is touched only on the main thread. The engines' and the show's typed events arrive on one
queue; the window drains a bounded batch of them every POLL_MS with `after()`, and cancels that
poll when it closes. The window never touches a model: the models live in worker processes
(`Engines`, started when the window opens and kept loaded across Start/Stop), and the window
only sends typed commands. Python's cyclic garbage collector runs on the Tk thread only (every
GC_MS), so a Tk object is never finalised on another thread.
Keyboard: space start/stop, F freeze, Esc panic, 1-9 cues, Page Down/Up next/previous cue (not while
typing in a text field). The show's cues and MIDI live in gui_cues.py and gui_midi.py.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import queue
import threading
import tkinter as tk
from collections.abc import Callable
from pathlib import Path
from tkinter import filedialog
from typing import Any

import customtkinter as ctk

from voicevibe.audio import AudioError, list_input_devices, rescan_devices
from voicevibe.config import Config
from voicevibe.config_files import save_settings
from voicevibe.events import (BRAIN_COMMANDS, SHOW_COMMANDS, Command, Freeze, Levels, Panic, PauseBrain, SayText, SendPrompt,
                     SetAgc, SetGain, SetGate, SetHistory, SetRate, SetStyle, SetVibe, Status, Stopped)
from voicevibe.brain.fallback import AssetError, load_assets
from voicevibe.gui.brain import describe_brain, show_brain_source, switched
from voicevibe.gui.firstrun import ModelsStrip
from voicevibe.gui.cues import CuePanel
from voicevibe.gui.midi import MidiPanel
from voicevibe.gui.panels import VIEWS, build_panels, show_levels, show_status
from voicevibe.gui.platform import TouchpadScroller, fit_window, handle_quit
from voicevibe.gui.widgets import AMBER, GREEN, GREY, RED
from voicevibe.hub import ModelError
from voicevibe.show.transitions import ShowSender
from voicevibe.runtime.session import SessionLogError

log = logging.getLogger(__name__)

POLL_MS = 40  # event poll period: 25 Hz is smooth for meters and cheap
POLL_BATCH = 200  # most events handled per tick, so a burst never freezes the window
OSC_REPORTS = 100  # OSC status reports waiting for the window (more are dropped: they repeat)
END_CHECK_TICKS = 5  # every 200 ms: has a rehearsal file finished?
SAVE_DELAY_MS = 1000  # settings are written this long after the last change
STOP_JOIN_SECONDS = 60.0  # Pipeline.stop() joins each stage with its own timeout
GC_MS = 1000  # the young generations are collected this often on the Tk thread, everything every GC_FULL ticks
GC_FULL = 30


class PerformanceWindow:
    """The operator's window: input, DSP, meters, transcript, prompts, brain, OSC, panic, status."""

    def __init__(self, config: Config, root: ctk.CTk, *, input_spec: str | None = None,
                 pipeline_factory: Callable[..., Any] | None = None, engines: Any = None,
                 settings_file: Path | None = None) -> None:
        self.config, self.root = config, root
        self.pipeline_factory = pipeline_factory or _default_factory
        self.settings_file = settings_file
        self._gc_was_enabled = gc.isenabled()
        gc.disable()  # collected on this thread by _collect(): Tk objects are finalised here only
        self._gc_ticks = 0
        self.engines: Any = engines or _default_engines(config)
        self.pipeline: Any = None  # the running show: the commands go to it
        # The window owns the OSC sender, so panic, freeze and typed prompts work with the engine stopped.
        self._osc_reports: queue.Queue = queue.Queue(OSC_REPORTS)
        self.osc = ShowSender(config.osc, report=self._osc_report, show=config.show)
        self.osc_reports_dropped = 0
        self._ending: Any = None  # an engine being stopped: its last events are still shown
        self._stopper: threading.Thread | None = None
        self.frozen = self.panicked = self.paused = False
        self._changed: dict[str, set[str]] = {}
        self._save_id: str | None = None
        self._poll_id: str | None = None
        self._ticks = 0
        self.closed = False
        self.styles = list(_style_names(config))
        root.title("VoiceVibe")
        self.fit = fit_window(root.winfo_screenwidth(), root.winfo_screenheight())
        root.geometry(self.fit.geometry)
        root.protocol("WM_DELETE_WINDOW", self.close)
        handle_quit(root, self.close)  # Cmd-Q closes cleanly instead of Tcl_Exit(0)
        self.touchpad = TouchpadScroller(root)
        self.touchpad.bind()  # Tk 9 on macOS: trackpad scrolling of the left column
        self.ui = build_panels(self, root)
        self.models = ModelsStrip(self, root)  # first launch: missing models, a Download button
        self.cues = CuePanel(self, self.ui.right)  # owns self.show: cues, seeds and transitions work stopped too
        self.midi = MidiPanel(self, self.ui.left)
        for key in ("<space>", "<Key-f>", "<Key-F>", "<Escape>"):
            root.bind(key, self._on_key)
        self.refresh_devices()
        self._preselect_input(config.audio.input if input_spec is None else input_spec)
        self._poll_id = root.after(POLL_MS, self._poll)
        self._gc_id: str | None = root.after(GC_MS, self._collect)
        self.engines.start()  # the models load now, shown in the status bar, and stay loaded
        # Everything built so far (modules, widgets) lives as long as the window: freeze it out of the collector,
        # so a full collection scans only what came later (40 ms -> under 1 ms here: bench/RESULTS-workers.md).
        gc.collect()
        gc.freeze()

    # ---------- input ----------

    def refresh_devices(self) -> None:
        """Ask PortAudio for the inputs again and fill the picker (saying so when there are none)."""
        try:
            if self.pipeline is None and self._ending is None:
                rescan_devices()  # never with a stream open
            devices = list_input_devices()
        except AudioError as e:
            devices, problem = [], str(e)
        else:
            problem = "" if devices else "no microphone found: plug one in and press Refresh, or rehearse with a file"
        self.devices = devices
        names = [f"{d.index}: {d.name}" + (" (default)" if d.is_default else "") for d in devices]
        self.ui.device_menu.configure(values=names or ["(no input device)"])
        self.ui.device_menu.set(names[0] if names else "(no input device)")
        for d, name in zip(devices, names):
            if d.is_default:
                self.ui.device_menu.set(name)
        self.ui.device_note.configure(text=problem, text_color=AMBER if problem else GREY)

    def _preselect_input(self, spec: str) -> None:
        if spec and Path(spec).expanduser().is_file():
            self.ui.file_path.set(str(Path(spec).expanduser()))
            self.ui.mode.set("File")
        elif spec:
            for d in self.devices:
                if spec == str(d.index) or spec.casefold() in d.name.casefold():
                    self.ui.device_menu.set(f"{d.index}: {d.name}" + (" (default)" if d.is_default else ""))

    def choose_file(self) -> None:
        """A file dialog for a rehearsal recording."""
        path = filedialog.askopenfilename(parent=self.root, title="Rehearsal recording",
                                          filetypes=[("Audio", "*.wav *.flac *.ogg *.mp3"), ("All files", "*")])
        if path:
            self.ui.file_path.set(path)
            self.ui.mode.set("File")

    def _input(self) -> tuple[str | None, list[str] | None]:
        """(input_spec, script) for the Pipeline from the input panel."""
        mode = self.ui.mode.get()
        if mode == "File":
            path = self.ui.file_path.get().strip()
            if not path:
                raise AudioError("no rehearsal file chosen: press 'Choose file…' first")
            return path, None
        if mode == "Script":
            lines = [line.strip() for line in self.ui.script.get("1.0", "end").splitlines() if line.strip()]
            return None, lines
        choice = self.ui.device_menu.get()
        if not self.devices or ":" not in choice:
            raise AudioError("no microphone to listen to: plug one in and press Refresh, or rehearse with a file")
        return choice.split(":", 1)[0], None

    # ---------- start / stop ----------

    def toggle_running(self) -> None:
        """Start the show, or stop it."""
        if self.pipeline is None:
            self.start()
        else:
            self.stop()

    def start(self) -> None:
        """Build and start a Pipeline from the current settings."""
        if self.pipeline is not None or self._ending is not None:
            return
        try:
            spec, script = self._input()
        except AudioError as e:
            self.show_message(str(e), "error")
            return
        if self.ui.mode.get() == "Microphone":
            self._remember("audio", "input", spec)  # a rehearsal file is not kept: the next show is live
        record = {"on": True, "off": False}.get(self.config.session.record_audio, spec is not None
                                                and self.ui.mode.get() == "Microphone")
        try:
            self.engines.reconfigure(self.config)  # reloads a model only if its settings changed
            self.pipeline = self.pipeline_factory(self.config, engines=self.engines, input_spec=spec, script=script,
                                                  record_audio=record, osc=self.osc, show=self.show)
            self.pipeline.start()
        except (AudioError, AssetError, ModelError, SessionLogError, ValueError, OSError) as e:
            self.pipeline = None
            self.show_message(f"cannot start: {e}", "error")
            return
        self.ui.start_button.configure(text="■ Stop", fg_color=RED)
        self.show_message("starting…", "info")

    def stop(self) -> None:
        """Stop the pipeline in a helper thread (it joins the engine's threads, releases the device and
        closes the log); the window keeps polling until its Stopped event arrives."""
        pipeline, self.pipeline = self.pipeline, None
        if pipeline is None:
            return
        self.show_message("stopping…", "info")
        self.ui.start_button.configure(text="stopping…", fg_color=GREY, state="disabled")
        self._ending = pipeline
        self._stopper = threading.Thread(target=pipeline.stop, name="gui-stop")  # touches no widget
        self._stopper.start()

    def _finish_stop(self) -> None:
        """The stopped pipeline's last event has been shown: ready to start again."""
        if self._stopper is not None:
            self._stopper.join(STOP_JOIN_SECONDS)
        self._ending = self._stopper = None
        self.ui.start_button.configure(text="▶ Start", fg_color=GREEN, state="normal")

    # ---------- controls ----------

    def command(self, command: Command) -> None:
        """Carry out an operator command: through the running show (which logs it), or directly while stopped.

        Freeze, panic, typed prompts and cues reach the screen with the engine stopped (the window owns the OSC
        sender and the show); brain commands reach the brain, whose state outlives a show; DSP settings wait for
        the next. Safe from any thread (MIDI buttons act from the MIDI reading thread).
        """
        if self.pipeline is not None:
            self.pipeline.apply(command)
        elif isinstance(command, Freeze):
            self.osc.freeze(command.on)
        elif isinstance(command, Panic):
            self.osc.panic(command.on)
        elif isinstance(command, SendPrompt):
            self.osc.send_text(command.text)
        elif isinstance(command, BRAIN_COMMANDS):
            self.engines.brain.command(command)
        elif isinstance(command, SHOW_COMMANDS):
            self.show.apply(command)

    def set_gain(self, db: float) -> None:
        """Input pre-gain in dB (live)."""
        self._remember("dsp", "gain_db", round(db, 1))
        self.command(SetGain(round(db, 1)))

    def set_gate(self, threshold: float) -> None:
        """Gate opening threshold, linear peak (live)."""
        self._remember("dsp", "gate_threshold", round(threshold, 4))
        self.command(SetGate(round(threshold, 4)))

    def set_agc(self, on: bool) -> None:
        """AGC on or off (live)."""
        self._remember("dsp", "agc", bool(on))
        self.command(SetAgc(bool(on)))

    def brain(self, command: Any) -> None:
        """A brain command; style, vibe, history and rate are also kept in the settings."""
        kept = {SetStyle: ("style", "name"), SetVibe: ("vibe", "text"), SetHistory: ("history_seconds", "seconds"),
                SetRate: ("prompt_interval_seconds", "seconds")}.get(type(command))
        if kept is not None:
            self._remember("brain", kept[0], getattr(command, kept[1]))
        if isinstance(command, PauseBrain):
            self.paused = command.on
        self.command(command)

    def switch_brain(self) -> None:
        """Swap brain.model and brain.switch_model (e.g. local <-> server); only the brain worker restarts."""
        brain = switched(self.config.brain)
        if brain is self.config.brain:
            return
        self._remember("brain", "model", brain.model)
        self._remember("brain", "switch_model", brain.switch_model)
        self.engines.reconfigure(self.config)  # mid-show too: the fallback answers while the other brain starts
        show_brain_source(self.ui, self.config.brain)
        self.show_message(f"brain: switching to {describe_brain(brain)}", "info")

    def toggle_pause(self, on: bool | None = None, *, apply: bool = True) -> None:
        """Pause the brain (memory kept), or resume it; `on` sets it (`apply=False`: it was, by MIDI)."""
        on = not self.paused if on is None else on
        if apply:
            self.brain(PauseBrain(on))
        self.paused = on
        self.ui.pause_button.configure(text="Resume brain" if self.paused else "Pause brain",
                                       fg_color=AMBER if self.paused else GREY)

    def toggle_freeze(self, on: bool | None = None, *, apply: bool = True) -> None:
        """Freeze the screen (nothing new sent), or release it (the newest prompt goes out)."""
        self.frozen = not self.frozen if on is None else on
        if apply:
            self.command(Freeze(self.frozen))
        self.ui.freeze_button.configure(text="FROZEN (F)" if self.frozen else "Freeze (F)",
                                        fg_color="#1f618d" if self.frozen else GREY)

    def toggle_panic(self, on: bool | None = None, *, apply: bool = True) -> None:
        """Panic: the safe prompt at once and nothing else until released."""
        self.panicked = not self.panicked if on is None else on
        if apply:
            self.command(Panic(self.panicked))
        self.ui.panic_button.configure(text="PANIC ON - release (Esc)" if self.panicked else "PANIC (Esc)",
                                       fg_color="#ff0000" if self.panicked else RED)

    def send_manual(self, text: str | None = None) -> None:
        """Send a typed prompt straight to the screen, bypassing the brain."""
        text = (self.ui.manual.get() if text is None else text).strip()
        if text:
            self.command(SendPrompt(text))
            self.ui.manual.delete(0, "end")

    def say(self, text: str | None = None) -> None:
        """A typed phrase straight to the brain (script / typed-text mode)."""
        text = (self.ui.say.get() if text is None else text).strip()
        if text and self.pipeline is not None:
            self.pipeline.apply(SayText(text))
            self.ui.say.delete(0, "end")

    def resend(self, prompt: Any) -> None:
        """Send a past prompt again (a click in the history)."""
        self.command(SendPrompt(prompt.text))

    def _on_key(self, event: tk.Event) -> str | None:
        if isinstance(event.widget, (tk.Entry, tk.Text)) and event.keysym != "Escape":
            return None  # typing a space or an F in a text field
        action = {"space": self.toggle_running, "f": self.toggle_freeze, "F": self.toggle_freeze,
                  "Escape": self.toggle_panic}[event.keysym]
        action()
        return "break"

    def _osc_report(self, item: object) -> None:
        """Called on whichever thread sent: queue it for the Tk thread, never touch a widget here."""
        try:
            self._osc_reports.put_nowait(item)
        except queue.Full:  # reports repeat (rate-limited per target): the next one brings the news
            self.osc_reports_dropped += 1

    # ---------- settings ----------

    def _collect(self) -> None:
        """The garbage collector's run, on the Tk thread: the young generations, and now and then all."""
        self._gc_ticks += 1
        gc.collect(2 if self._gc_ticks % GC_FULL == 0 else 1)
        self._gc_id = self.root.after(GC_MS, self._collect)

    def _remember(self, section: str, key: str, value: Any) -> None:
        """Apply a changed setting to the config and save it shortly (debounced)."""
        part = dataclasses.replace(getattr(self.config, section), **{key: value})
        self.config = dataclasses.replace(self.config, **{section: part})
        self._changed.setdefault(section, set()).add(key)
        if self._save_id is not None:
            self.root.after_cancel(self._save_id)
        self._save_id = self.root.after(SAVE_DELAY_MS, self.save_settings)

    def save_settings(self) -> None:
        """Write the settings the operator changed (they come back next launch)."""
        self._save_id = None
        if self._changed:
            try:
                path = save_settings(self.config, self._changed, self.settings_file)
                log.debug("settings saved to %s", path)
            except OSError as e:
                self.show_message(f"cannot save settings: {e}", "warning")

    # ---------- events ----------

    def _poll(self) -> None:
        """Handle up to POLL_BATCH events, then look again in POLL_MS."""
        if self._poll_id is not None:
            self.root.after_cancel(self._poll_id)  # called directly (a test): keep a single poll scheduled
        self._poll_id = None
        pipeline = self.pipeline or self._ending
        queues = [self.engines.events]
        if pipeline is not None and pipeline.events is not self.engines.events:
            queues.append(pipeline.events)  # a stand-in pipeline with a queue of its own (tests)
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
        for _ in range(OSC_REPORTS):
            try:
                self.handle(self._osc_reports.get_nowait())
            except queue.Empty:
                break
        if levels is not None:
            show_levels(self.ui, levels)
        self.models.poll()
        self.cues.refresh()
        self.midi.poll()
        self._ticks += 1
        if self._ticks % (1000 // POLL_MS) == 0:
            self.ui.targets.refresh()
        if (pipeline is not None and pipeline is self.pipeline and self._ticks % END_CHECK_TICKS == 0
                and self.ui.mode.get() == "File" and pipeline.wait(0)):
            self.show_message("rehearsal file finished", "info")
            self.stop()  # the file ended and its last prompt went out
        if not self.closed:
            self._poll_id = self.root.after(POLL_MS, self._poll)

    def handle(self, item: object) -> None:
        """Show one event (gui_panels.VIEWS); Status and Stopped also change the window's state."""
        view = VIEWS.get(type(item))
        if view is not None:
            view(self.ui, item)
        elif isinstance(item, Status):
            self.on_status(item)
        elif isinstance(item, Stopped):
            self.on_stopped(item)
        else:
            log.debug("window ignores %s", type(item).__name__)

    def on_status(self, status: Any) -> None:
        """A Status: its part of the status bar, and the message line for problems and other stages."""
        if show_status(self.ui, status):
            self.show_message(f"[{status.stage}] {status.message}", status.level)

    def on_stopped(self, stopped: Any) -> None:
        """The engine has finished (end of a rehearsal file, error or stop)."""
        if stopped.error:
            self.show_message(f"stopped: {stopped.error}", "error")
        else:
            self.show_message("stopped", "info")
        if self.pipeline is not None:
            self.stop()  # it stopped itself: release it too
        else:
            self._finish_stop()

    def show_message(self, text: str, level: str = "info") -> None:
        """The status bar's message line."""
        colour = {"error": RED, "warning": AMBER}.get(level, "gray85")
        self.ui.message.configure(text=text, text_color=colour)
        getattr(log, {"error": "error", "warning": "warning"}.get(level, "info"))("%s", text)

    # ---------- closing ----------

    def close(self) -> None:
        """Stop the engine, save settings, cancel the poll and destroy the window."""
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
        self.models.close()
        self.engines.close()
        self.midi.close()
        self.osc.close()
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


def _default_factory(config: Config, **kwargs: Any) -> Any:
    from voicevibe.runtime.pipeline import Pipeline

    return Pipeline(config, **kwargs)


def _default_engines(config: Config) -> Any:
    from voicevibe.runtime.engines import Engines

    return Engines(config)
