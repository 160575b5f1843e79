"""The right microphone: it is named by its name and host API, found again by that name when AirPods (or an
iPhone, or a virtual device) renumber the inputs, and a missing one is said, with the inputs there are,
never replaced by another. sounddevice is faked at its seams (tests/support/devices.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from support.devices import FakeAudioSystem, Layout, install_devices, layout
from support.shows import drain, show_config, until
from voicevibe import audio, cli
from voicevibe.audio import AudioError, MicSource
from voicevibe.config import Config
from voicevibe.events import Status
from voicevibe.runtime import audio_feed
from voicevibe.runtime.controls import Controls
from voicevibe.runtime.pipeline import Pipeline
from voicevibe.testing.peer import OscPeer

SCARLETT = "Scarlett 2i2 USB, Core Audio"
# Before: the interface is input 2. After: AirPods connect, take index 2 and the default input; the interface is 3.
BEFORE = layout("MacBook Pro Microphone", "MacBook Pro Speakers>", "Scarlett 2i2 USB", "BlackHole 2ch",
                default="Scarlett 2i2 USB")
UNPLUGGED = layout("MacBook Pro Microphone", "MacBook Pro Speakers>", "AirPods Pro", "BlackHole 2ch",
                   default="AirPods Pro")
AFTER = layout("MacBook Pro Microphone", "MacBook Pro Speakers>", "AirPods Pro", "Scarlett 2i2 USB", "BlackHole 2ch",
               default="AirPods Pro")


def show(monkeypatch: pytest.MonkeyPatch, shown: Layout) -> None:
    """PortAudio lists `shown` (Core Audio, as on a Mac)."""
    install_devices(monkeypatch, *shown, apis=("Core Audio",))


def test_the_saved_name_opens_the_same_input_after_airpods_renumber_the_devices(monkeypatch: pytest.MonkeyPatch
                                                                                ) -> None:
    show(monkeypatch, BEFORE)
    saved = audio.resolve_device("2").key  # what the window saves when the operator picks input 2
    assert saved == SCARLETT
    show(monkeypatch, AFTER)
    assert audio.resolve_device("2").name == "AirPods Pro"  # the old saved index now opens the wrong input
    assert (audio.resolve_device(saved).index, audio.resolve_device(saved).name) == (3, "Scarlett 2i2 USB")
    assert audio.resolve_device("").name == "AirPods Pro"  # and so would "the default"
    system = FakeAudioSystem(monkeypatch, AFTER)
    with MicSource(saved) as mic:
        assert mic.device.index == 3
    assert system.opened == ["Scarlett 2i2 USB"]


def test_a_saved_input_that_is_gone_is_said_with_the_inputs_there_are(monkeypatch: pytest.MonkeyPatch) -> None:
    show(monkeypatch, UNPLUGGED)
    with pytest.raises(AudioError) as caught:
        audio.resolve_device(SCARLETT)
    message = str(caught.value)
    assert f"microphone {SCARLETT!r} is not connected" in message and "plug it in" in message
    assert "0 'MacBook Pro Microphone', 2 'AirPods Pro', 3 'BlackHole 2ch'" in message


def test_a_saved_name_is_matched_whole_never_as_a_part_of_another(monkeypatch: pytest.MonkeyPatch) -> None:
    show(monkeypatch, layout("AirPods Mic", "Studio Mic 2", default="AirPods Mic"))
    with pytest.raises(AudioError, match="'Mic, Core Audio' is not connected"):
        audio.resolve_device("Mic, Core Audio")  # a typed name part would take "AirPods Mic"; a saved name must not
    with pytest.raises(AudioError, match="'Studio Mic, Core Audio' is not connected"):
        audio.resolve_device("Studio Mic, Core Audio")
    assert audio.resolve_device("studio").name == "Studio Mic 2"  # a typed part still works as before


def test_two_inputs_with_the_same_name_are_not_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    show(monkeypatch, layout("USB Mic", "USB Mic", default="USB Mic"))
    with pytest.raises(AudioError, match="2 inputs are called 'USB Mic, Core Audio'.*by its index"):
        audio.resolve_device("USB Mic, Core Audio")
    assert audio.resolve_device("1").index == 1


@pytest.mark.parametrize("spec", [SCARLETT, "2", ""], ids=["saved name", "old saved index", "system default"])
def test_after_an_unplug_the_same_input_is_reopened_by_name_never_the_airpods(
        spec: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fast_checkpoint: Path, peer: OscPeer,
        controls_for: Callable[[Config], Controls]) -> None:
    """Start on the interface (by saved name, by an old index, or as the default); pull it out; AirPods connect
    (index 2 and the default input); the interface comes back as input 3: it is the one reopened."""
    monkeypatch.setattr(audio, "NO_AUDIO_SECONDS", 0.3)
    monkeypatch.setattr(audio_feed, "MIC_RETRY_SECONDS", 0.1)
    system = FakeAudioSystem(monkeypatch, BEFORE, UNPLUGGED, UNPLUGGED, AFTER)
    config = show_config(tmp_path, fast_checkpoint, peer)
    pipeline = Pipeline(config, controls=controls_for(config), input_spec=spec)
    pipeline.start()
    events: list[object] = []
    try:
        until(lambda: events.extend(drain(pipeline.events)) or system.opened)
        system.unplug()
        until(lambda: events.extend(drain(pipeline.events)) or len(system.opened) == 2)
    finally:
        pipeline.stop()
    events += drain(pipeline.events)
    assert system.opened == ["Scarlett 2i2 USB", "Scarlett 2i2 USB"]
    statuses = [e.message for e in events if isinstance(e, Status) and e.stage == "audio"]
    missing = [m for m in statuses if f"microphone {SCARLETT!r} is not connected" in m]
    assert missing and "2 'AirPods Pro'" in missing[0] and "retrying every 0.1 s" in missing[0]
    assert sum(m.startswith("listening to microphone") for m in statuses) == 2
    assert any("is a device index" in m and repr(SCARLETT) in m for m in statuses) == (spec == "2")


def test_devices_lists_the_host_api_and_the_name_to_save(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    show(monkeypatch, AFTER)
    assert cli.main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "*   2  AirPods Pro  (Core Audio, 1 ch, 48000 Hz)" in out
    assert 'audio.input = "MacBook Pro Microphone, Core Audio"' in out
