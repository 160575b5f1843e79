"""MIDI through real ports (tests/support/midi.py: a JACK server with the dummy driver on Linux, CoreMIDI on
macOS) and a fake controller that is a real virtual MIDI port. The engine's gain, panic, MIDI learn,
reconnection, and the window's MIDI panel (under Xvfb) with its mapping surviving a restart of the window.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mido
import pytest

from support.fakes import RecordingControls, RecordingPipeline
from support.gui import pump, window_for
from support.midi import PORT, MidiPorts, midi_system
from support.shows import until
from voicevibe.config import Config
from voicevibe.config_files import load_config
from voicevibe.events import Panic, Status
from voicevibe.midi.input import MidiError, MidiInput, list_ports
from voicevibe.runtime.pipeline import Pipeline
from voicevibe.runtime.session import read_log
from voicevibe.testing.peer import OscPeer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def controller(midi_ports: MidiPorts) -> Iterator[Any]:
    """A fake controller: a MIDI client with one virtual output port."""
    out = midi_ports.open_controller()
    yield out
    out.close()


def midi_config(ports: MidiPorts, **midi: Any) -> Config:
    settings = {"backend": ports.setting, "port": PORT, "reconnect_seconds": 0.2, **midi}
    return load_config(overrides=[{"midi": settings}], include_defaults_files=False)


def cc(control: int, value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", channel=channel, control=control, value=value)


def note(number: int, velocity: int, channel: int = 9) -> mido.Message:
    return mido.Message("note_on", channel=channel, note=number, velocity=velocity)


def live(midi: MidiInput, controller: Any, timeout: float = 20.0) -> None:
    """Wait until messages flow: a JACK connection takes effect at a later cycle, so an unmapped probe CC
    is sent until the router counts it (a message sent before that would be lost, as on a real rig)."""
    until(lambda: PORT in (midi.connected or ""), timeout=timeout)
    seen = midi.counts["unmapped"]
    deadline = time.monotonic() + timeout
    while midi.counts["unmapped"] == seen:
        assert time.monotonic() < deadline, "no MIDI message got through"
        controller.send(cc(119, 1, channel=15))  # channel 16, CC 119: mapped in no test
        time.sleep(0.05)


def send_until(controller: Any, message: mido.Message, done: Callable[[], object], timeout: float = 20.0) -> None:
    """Send an absolute control (a CC value: sending it again changes nothing) until `done()`; a message
    in a JACK cycle that a loaded machine missed is lost."""
    deadline = time.monotonic() + timeout
    while True:
        controller.send(message)
        try:
            until(done, timeout=1.0)
            return
        except AssertionError:
            assert time.monotonic() < deadline, f"{message} had no effect"


def test_voicevibe_midi_lists_the_controller(midi_ports, controller):
    done = subprocess.run([sys.executable, "-m", "voicevibe", "midi", "--set", f'midi.backend="{midi_ports.setting}"'],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert midi_ports.controller in done.stdout.splitlines()
    assert midi_ports.controller in list_ports(midi_config(midi_ports).midi)


def test_a_backend_that_cannot_start_is_named_with_the_fix():
    with pytest.raises(MidiError, match="UNIX_JACK"):
        list_ports(load_config(overrides=[{"midi": {"backend": "mido.backends.rtmidi/LINUX_ALSA"}}],
                               include_defaults_files=False).midi)
    done = subprocess.run([sys.executable, "-m", "voicevibe", "midi", "--set", 'midi.backend="mido.backends.nope"'],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2 and "midi.backend" in done.stderr


def test_a_cc_moves_the_engine_gain_and_a_note_fires_panic(midi_ports, controller, tmp_path):
    with OscPeer() as peer:
        config = load_config(overrides=[{
            "stt": {"model": str(tmp_path / "none")}, "brain": {"model": "none"},
            "osc": {"targets": f"127.0.0.1:{peer.port}", "preset": "vocevibe"},
            "session": {"log_dir": str(tmp_path / "log")},
            "midi": {"backend": midi_ports.setting, "port": PORT, "reconnect_seconds": 0.2,
                     "mapping": "gain=cc:1:7, panic=note:10:36"}}], include_defaults_files=False)
        pipeline = Pipeline(config, script=[])
        pipeline.start()
        midi = MidiInput(config.midi, pipeline.apply, state=lambda kind: kind is Panic and pipeline.osc.panicked)
        try:
            midi.start()
            live(midi, controller)
            send_until(controller, cc(7, 127), lambda: pipeline.dsp.params.gain_db == 24.0)
            send_until(controller, cc(7, 32),
                       lambda: pipeline.dsp.params.gain_db == pytest.approx(-24 + 48 * 32 / 127, abs=0.06))
            controller.send(note(36, 100))
            assert [m.params for m in peer.wait_for("/visual/panic", 1)] == [[1]]
            assert peer.on("/visual/prompt")[-1].params == [config.osc.panic_prompt]
            controller.send(note(36, 0))  # the pad's release: nothing
            controller.send(cc(99, 5))  # unmapped
            controller.send(mido.Message("sysex", data=[1, 2, 3]))
            controller.send(note(36, 90))  # the second press releases panic
            assert [m.params for m in peer.wait_for("/visual/panic", 2)] == [[1], [0]]
            until(lambda: midi.counts["unmapped"] >= 3, timeout=10)
            assert midi.counts["errors"] == 0 and midi.counts["handled"] >= 4
        finally:
            midi.close()
            pipeline.stop()
    controls = [r for r in read_log(pipeline.log_path) if r["type"] == "control"]
    assert [c["action"] for c in controls] == ["set_gain", "set_gain", "panic", "panic"]


def test_learn_maps_a_new_cc_and_an_unplugged_controller_comes_back(midi_ports, tmp_path):
    commands: list[Any] = []
    learned: list[Any] = []
    statuses: list[Status] = []
    midi = MidiInput(midi_config(midi_ports).midi, commands.append, on_learn=learned.append, report=statuses.append)
    out = midi_ports.open_controller()
    try:
        midi.start()
        live(midi, out)
        midi.learn("gate")
        send_until(out, cc(21, 64), lambda: learned)
        assert learned[0].mapping == "gate=cc:1:21"
        commands.clear()  # a repeated learning CC drives the gate once learned
        send_until(out, cc(21, 127), lambda: commands)
        assert commands[0].threshold == 0.3
        out.close()  # unplugged
        until(lambda: any("unplugged" in s.message and s.level == "warning" for s in statuses), timeout=10)
        assert midi.connected is None
        out = midi_ports.open_controller()  # plugged back in
        live(midi, out)
        send_until(out, cc(21, 0), lambda: commands[-1].threshold == 0.0)
        assert statuses[-1].message == f"MIDI: listening to {midi_ports.controller}"
    finally:
        midi.close()
        out.close()


SHOW = '[[cue]]\nname = "Harbour"\nprompt = "a harbour at dusk"\n[[cue]]\nname = "Storm"\nprompt = "a storm"\n'


def test_the_window_learns_a_cc_fires_cues_and_panic_and_keeps_the_mapping_after_a_restart(
        midi_ports, controller, display, guard, tmp_path):
    settings = tmp_path / "settings.toml"
    show = tmp_path / "show.toml"
    show.write_text(SHOW, encoding="utf-8")
    with OscPeer() as peer:
        layer = {"midi": {"backend": midi_ports.setting, "port": PORT, "reconnect_seconds": 0.2,
                          "mapping": "panic=note:10:36"},
                 "osc": {"targets": f"127.0.0.1:{peer.port}", "preset": "generic"}, "show": {"file": str(show)}}
        config = load_config(overrides=[layer], include_defaults_files=False)
        with window_for(config, guard, pipeline_factory=RecordingPipeline, controls=RecordingControls(config),
                        settings_file=settings) as w:
            live(w.midi.input, controller)
            w.midi.refresh_ports()
            assert w.midi.port_menu.get() == midi_ports.controller
            w.midi.arm("gain")
            controller.send(cc(30, 100))
            pump(w.root, lambda: w.midi.bindings["gain"].cget("text") == "cc:1:30")
            assert "gain=cc:1:30" in w.midi.mapping.get()
            for _ in range(40):  # the knob turned down (again, should a loaded machine drop a JACK cycle)
                controller.send(cc(30, 0))
                pump(w.root)
                if w.ui.gain.value == -24.0:
                    break
            assert w.ui.gain.value == -24.0  # the slider moved (and the gain went out)
            w.midi.arm("cue2")
            controller.send(note(50, 127, channel=0))
            pump(w.root, lambda: w.midi.bindings["cue2"].cget("text") == "note:1:50")
            controller.send(note(50, 127, channel=0))
            pump(w.root, lambda: ("/prompt", ["a storm"]) in [(m.address, m.params) for m in peer.messages])
            pump(w.root, lambda: w.cues.highlighted() is None)  # cue 2 was the last: nothing next
            controller.send(note(36, 100))
            pump(w.root, lambda: w.screen.panicked)
            pump(w.root, lambda: "PANIC ON" in w.ui.panic_button.cget("text"))  # the button follows, at a poll
            pump(w.root, lambda: ("/panic", [1]) in [(m.address, m.params) for m in peer.messages])
        # The window is closed (its port too); a new launch reads the saved settings over the config.
        saved = settings.read_text(encoding="utf-8")
        assert "gain=cc:1:30" in saved and "cue2=note:1:50" in saved
        config = load_config([settings], [{"osc": layer["osc"], "midi": {"backend": midi_ports.setting, "port": PORT,
                                                                        "reconnect_seconds": 0.2}}],
                             include_defaults_files=False)
        with window_for(config, guard, pipeline_factory=RecordingPipeline, controls=RecordingControls(config),
                        settings_file=settings) as w:
            assert w.midi.bindings["gain"].cget("text") == "cc:1:30"
            assert w.midi.bindings["cue2"].cget("text") == "note:1:50"
            live(w.midi.input, controller)
            for _ in range(40):
                controller.send(cc(30, 127))
                pump(w.root)
                if w.ui.gain.value == 24.0:
                    break
            assert w.ui.gain.value == 24.0


def test_a_headless_run_with_midi_fires_a_cue_from_a_pad(midi_ports, controller, tmp_path):
    show = tmp_path / "show.toml"
    show.write_text(SHOW, encoding="utf-8")
    with OscPeer() as peer:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voicevibe", "run", "--no-gui", "--script", "-", "--show", str(show),
             "--midi", PORT, "--osc", f"127.0.0.1:{peer.port}", "--preset", "generic",
             "--set", f'midi.backend="{midi_ports.setting}"', "--set", 'midi.mapping="cue2=note:10:38"',
             "--set", 'brain.model="none"', "--set", f'stt.model="{tmp_path / "none"}"',
             "--set", f'session.log_dir="{tmp_path / "log"}"'],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr), name="stderr")
        reader.start()
        try:
            listening = f"[midi] MIDI: listening to {midi_ports.controller}"
            until(lambda: any(listening in line for line in lines), timeout=60)
            deadline = time.monotonic() + 20
            while not peer.on("/prompt"):  # a pad hit in a JACK cycle a loaded machine missed is lost: hit again
                assert time.monotonic() < deadline, "".join(lines)
                controller.send(note(38, 100))
                time.sleep(0.5)
        finally:
            proc.stdin.close()  # the script ends: the run ends, closing its MIDI port while JACK is up
            proc.wait(60)
            reader.join(10)
        out = proc.stdout.read()
    assert proc.returncode == 0, "".join(lines)
    assert peer.on("/prompt")[0].params == ["a storm"] and peer.on("/seed")
    assert "=> cue 2 Storm: a storm   [midi" in out


@pytest.mark.parametrize(("platform", "apis", "system"), [
    ("linux", ["LINUX_ALSA", "UNIX_JACK"], "UNIX_JACK"),  # no ALSA sequencer without sound hardware: JACK
    ("darwin", ["MACOSX_CORE"], "MACOSX_CORE"),  # CoreMIDI's virtual ports need no server
    ("linux", ["LINUX_ALSA"], None),  # a python-rtmidi built without JACK
    ("win32", ["WINDOWS_MM"], None),  # Windows' MultiMedia API has no virtual ports
])
def test_the_tests_midi_system_is_chosen_by_platform(platform: str, apis: list[str], system: str | None) -> None:
    assert midi_system(platform, apis) == system
