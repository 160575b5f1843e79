"""The window's microphone: saved by its name and host API (an old saved index is shown and replaced), kept
across Refresh when AirPods renumber the inputs, and a saved one that is missing stays chosen, marked, so
Start never opens another in its place. Real Tk under Xvfb; sounddevice faked (tests/support/devices.py)."""

from __future__ import annotations

import dataclasses

import pytest

from support.devices import FakeAudioSystem, layout
from support.fakes import RecordingControls, RecordingPipeline
from support.gui import pump, window_for
from voicevibe.config import AudioConfig, Config
from voicevibe.gui.window import PerformanceWindow

SCARLETT = "Scarlett 2i2 USB, Core Audio"
BEFORE = layout("MacBook Pro Microphone", "MacBook Pro Speakers>", "Scarlett 2i2 USB", default="MacBook Pro Microphone")
AIRPODS = layout("MacBook Pro Microphone", "MacBook Pro Speakers>", "AirPods Pro", "Scarlett 2i2 USB",
                 default="AirPods Pro")
UNPLUGGED = layout("MacBook Pro Microphone", "MacBook Pro Speakers>", "AirPods Pro", default="AirPods Pro")


def saved_input(spec: str) -> Config:
    return dataclasses.replace(Config(), audio=AudioConfig(input=spec))


def start_and_stop(window: PerformanceWindow) -> str:
    """Start in Microphone mode: the input the show got (and the window saved); then stop."""
    window.ui.mode.set("Microphone")
    window.start()
    assert window.pipeline is not None, window.ui.message.cget("text")
    spec = window.pipeline.kwargs["input_spec"]  # type: ignore[attr-defined]
    window.stop()
    pump(window.root, lambda: window.pipeline is None and window._ending is None)
    return str(spec)


def test_an_old_saved_index_is_shown_then_saved_as_the_name_which_survives_airpods(
        monkeypatch: pytest.MonkeyPatch, display: str, guard: list[str]) -> None:
    FakeAudioSystem(monkeypatch, BEFORE, BEFORE, AIRPODS)  # the window rescans when it opens, then at Refresh
    with window_for(saved_input("2"), guard, pipeline_factory=RecordingPipeline,
                    controls=RecordingControls()) as window:
        assert window.ui.device_menu.get().startswith("2: Scarlett 2i2 USB (Core Audio)")
        assert "device index" in window.ui.device_note.cget("text")
        assert start_and_stop(window) == SCARLETT and window.config.audio.input == SCARLETT
        window.inputs.refresh_devices()  # AirPods connect: they are input 2 and the default now
        assert window.ui.device_menu.get().startswith("3: Scarlett 2i2 USB")
        assert start_and_stop(window) == SCARLETT


def test_a_saved_microphone_that_is_missing_stays_chosen_and_start_waits_for_it(
        monkeypatch: pytest.MonkeyPatch, display: str, guard: list[str]) -> None:
    FakeAudioSystem(monkeypatch, UNPLUGGED)
    with window_for(saved_input(SCARLETT), guard, pipeline_factory=RecordingPipeline,
                    controls=RecordingControls()) as window:
        assert window.ui.device_menu.get() == f"{SCARLETT} — not connected"
        assert "is not connected" in window.ui.device_note.cget("text")
        assert start_and_stop(window) == SCARLETT  # never the AirPods, which are the default now
