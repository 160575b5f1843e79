"""The performance window under a private Xvfb: real Tk widgets and events, a recording pipeline.

(tests/test_gui_show.py runs the window on the real Pipeline.)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import customtkinter as ctk
import pytest

from support.fakes import RecordingControls, RecordingPipeline, started
from support.gui import MainThreadOnly, pump, window_for
from voicevibe.config import Config
from voicevibe.config_files import load_config, settings_path
from voicevibe.events import (
    Freeze,
    ImagePrompt,
    Levels,
    Panic,
    PauseBrain,
    PhraseEnd,
    SayText,
    SendPrompt,
    SetAgc,
    SetGain,
    SetGate,
    SetHistory,
    SetStyle,
    Word,
    WorkerState,
)
from voicevibe.gui.screen import PHRASE_MARK
from voicevibe.gui.window import POLL_BATCH, PerformanceWindow


@pytest.fixture
def window(display: str, guard: list[str]) -> Iterator[PerformanceWindow]:
    RecordingPipeline.made.clear()
    with window_for(Config(), guard, pipeline_factory=RecordingPipeline, controls=RecordingControls()) as w:
        yield w


def commands(w: PerformanceWindow) -> list[object]:
    """What the window's controls carried out so far."""
    return w.controls.commands  # type: ignore[attr-defined, no-any-return]


def test_gain_and_gate_sliders_drive_the_pipeline_and_persist(window: PerformanceWindow) -> None:
    started(window)
    pump(window.root)
    canvas = window.ui.gain.slider._canvas
    canvas.event_generate("<Button-1>", x=int(canvas.winfo_width() * 0.9), y=canvas.winfo_height() // 2)
    window.ui.gate.set(0.1)
    window.ui.agc.toggle()
    pump(window.root)
    gain = [c.db for c in commands(window) if isinstance(c, SetGain)]
    assert gain and gain[-1] > 12.0, commands(window)  # a click at 90 % of a -24..+24 dB slider
    assert SetGate(0.1) in commands(window) and SetAgc(False) in commands(window)
    params = window.controls.dsp.params  # the one DSP the shows run, show running or not
    assert (params.gain_db, params.gate_threshold, params.agc) == (gain[-1], 0.1, False)
    window.close()
    saved = load_config()
    assert saved.dsp.gain_db == gain[-1] and saved.dsp.gate_threshold == 0.1 and saved.dsp.agc is False
    assert settings_path().is_file()


def test_slider_labels_show_db_and_linear(window: PerformanceWindow) -> None:
    window.ui.gain.set(6.0)
    window.ui.gate.set(0.1)
    assert window.ui.gain.label.cget("text") == "+6.0 dB  (x2.00)"
    assert window.ui.gate.label.cget("text") == "0.100  (-20.0 dBFS)"


def test_prompt_rate_snaps_to_zero_or_two_to_sixty(window: PerformanceWindow) -> None:
    window.ui.rate.set(1.4)
    assert window.config.brain.prompt_interval_seconds == 2.0
    window.ui.rate.set(0.3)
    assert window.config.brain.prompt_interval_seconds == 0.0
    assert window.ui.rate.label.cget("text") == "every phrase"


def test_events_fill_transcript_prompts_meters_and_status(window: PerformanceWindow) -> None:
    pipeline = started(window)
    for text in (" Hello", " the", " moon"):
        pipeline.events.put(Word(text, 1, 0, 0.0))
    pipeline.events.put(PhraseEnd(3, 0.2, 0.9))
    prompt = ImagePrompt("cinematic film still, a moon", "hello the moon", "cinematic", "calm", "fallback",
                         reason="no model", latency_ms=12.0)
    pipeline.events.put(prompt)
    pipeline.events.put(Levels(0.5, 0.2, 0.9, 0.4, 1.8, True, True))
    window.engines.events.put(WorkerState("stt", "loading", "loading the speech model's weights", 0.4))
    pump(window.root, lambda: window.ui.prompts.entries)
    assert window.ui.progress.get() == pytest.approx(0.4)
    window.engines.events.put(WorkerState("stt", "ready", "speech model ready: tiny", 1.0))
    pump(window.root, lambda: window.ui.progress.get() == 1.0)
    assert window.ui.transcript.get("1.0", "end").rstrip("\n") == "Hello the moon" + PHRASE_MARK.rstrip("\n")
    [(shown, button)] = window.ui.prompts.entries
    assert shown is prompt and "fallback (no model) · 12 ms" in button.cget("text")
    assert window.ui.gate_label.cget("text") == "GATE OPEN" and "WEAK SIGNAL" in window.ui.weak_label.cget("text")
    assert "-6.0 dBFS" in window.ui.meter_in.text.cget("text")  # peak 0.5
    assert window.ui.model_status.cget("text") == "speech: speech model ready: tiny"
    button.invoke()  # a click on a past prompt sends it again
    assert SendPrompt(prompt.text) in commands(window)


def test_a_burst_is_handled_in_bounded_batches(window: PerformanceWindow) -> None:
    pipeline = started(window)
    for i in range(POLL_BATCH * 3):
        pipeline.events.put(Word(" x", i, i, 0.0))
    window._poll()
    assert pipeline.events.qsize() == POLL_BATCH * 2


def test_keys_start_freeze_panic_but_not_while_typing(window: PerformanceWindow) -> None:
    window.ui.mode.set("Script")
    window.root.focus_force()
    pump(window.root)
    window.root.event_generate("<space>")
    pipeline = window.pipeline
    assert isinstance(pipeline, RecordingPipeline)
    window.root.event_generate("<Key-f>")
    window.root.event_generate("<Escape>")
    assert Freeze(True) in commands(window) and Panic(True) in commands(window)
    entry = window.ui.manual._entry
    entry.focus_force()
    pump(window.root)
    entry.event_generate("<Key-f>")  # an F typed into a text field is a letter, not freeze
    assert [c for c in commands(window) if isinstance(c, Freeze)] == [Freeze(True)]
    window.root.focus_force()
    pump(window.root)
    window.root.event_generate("<space>")
    window.root.event_generate("<space>")  # twice: a running show is not stopped by one stray key
    assert window.pipeline is None
    pump(window.root, lambda: window.ui.start_button.cget("text") == "▶ Start")
    assert pipeline.stopped


def test_panic_and_freeze_and_brain_commands_work_with_the_show_stopped(window: PerformanceWindow) -> None:
    window.screen.toggle_panic()
    window.screen.toggle_freeze()
    window.brain.toggle_pause()
    assert window.controls.osc.panicked and window.controls.osc.frozen  # the app's own sender: shows share it
    assert commands(window) == [Panic(True), Freeze(True), PauseBrain(True)]
    assert window.engines.brain.paused  # the brain outlives a show
    pump(window.root)
    assert window.ui.panic_button.cget("text").startswith("PANIC ON") and window.ui.freeze_button.cget("text") == \
        "FROZEN (F)" and window.ui.pause_button.cget("text") == "Resume brain"  # the buttons follow the state
    pipeline = started(window)
    assert pipeline.kwargs["controls"] is window.controls
    assert window.engines.configs[-1] is window.config  # a changed model setting would reload it now


def test_manual_prompt_and_brain_controls_reach_the_controls(window: PerformanceWindow) -> None:
    started(window)
    window.ui.manual.insert(0, "a red door in the snow")
    window.screen.send_manual()
    window.ui.style.set("synthwave")
    window.brain.command(SetStyle("synthwave"))
    window.ui.history.set(120)
    window.brain.toggle_pause()
    assert SendPrompt("a red door in the snow") in commands(window)
    assert SetStyle("synthwave") in commands(window) and SetHistory(120.0) in commands(window)
    assert PauseBrain(True) in commands(window)
    assert window.config.brain.style == "synthwave" and window.config.brain.history_seconds == 120.0


def test_file_mode_without_a_file_says_what_to_do(window: PerformanceWindow) -> None:
    window.ui.mode.set("File")
    window.start()
    assert window.pipeline is None
    assert "Choose file" in window.ui.message.cget("text")


def test_no_microphone_is_said_clearly(window: PerformanceWindow) -> None:
    window.inputs.devices = []
    window.ui.mode.set("Microphone")
    window.start()
    assert window.pipeline is None and "no microphone" in window.ui.message.cget("text")


def test_close_stops_the_pipeline_and_cancels_the_poll(window: PerformanceWindow) -> None:
    pipeline = started(window)
    window.close()
    assert pipeline.stopped and window._poll_id is None and window.closed and window.engines.closed
    assert window._stopper is not None and not window._stopper.is_alive()


def test_guard_catches_a_widget_call_off_the_main_thread(display: str) -> None:
    violations: list[str] = []
    root = ctk.CTk()
    root.tk = MainThreadOnly(root.tk, violations)
    label = ctk.CTkLabel(root, text="x")
    refused: list[RuntimeError] = []

    def work() -> None:
        try:
            label.configure(text="from a worker")
        except RuntimeError as e:
            refused.append(e)

    worker = threading.Thread(target=work, name="worker")
    worker.start()
    worker.join(10)
    root.destroy()
    assert refused and violations and "worker" in violations[0]


def test_settings_come_back_at_the_next_launch(display: str, guard: list[str]) -> None:
    with window_for(load_config(), guard, pipeline_factory=RecordingPipeline,
                    controls=RecordingControls(load_config())) as first:
        first.ui.gain.set(-7.5)
        first.ui.style.set("ukiyo-e")
        first.brain.command(SetStyle("ukiyo-e"))
    with window_for(load_config(), guard, pipeline_factory=RecordingPipeline,
                    controls=RecordingControls(load_config())) as second:
        assert second.ui.gain.value == -7.5 and second.ui.gain.slider.get() == -7.5
        assert second.ui.style.get() == "ukiyo-e"
        pipeline = started(second)
        assert pipeline.config.dsp.gain_db == -7.5 and pipeline.config.brain.style == "ukiyo-e"


def test_script_mode_feeds_lines_and_typed_phrases(window: PerformanceWindow) -> None:
    window.ui.script.insert("1.0", "the moon rises\n\n  a ship leaves the harbour \n")
    pipeline = started(window, "Script")
    assert pipeline.kwargs["input_spec"] is None
    assert pipeline.kwargs["script"] == ["the moon rises", "a ship leaves the harbour"]
    window.ui.say.insert(0, "a red door")
    window.ui.say._entry.focus_force()
    pump(window.root)
    window.ui.say._entry.event_generate("<Return>")
    assert SayText("a red door") in commands(window) and window.ui.say.get() == ""
