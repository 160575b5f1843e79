"""The window on the real Pipeline under Xvfb: a rehearsal fills the panes, panic and freeze go out
over OSC to a local UDP receiver, sliders reach the engine's DSP, closing leaves no thread and no
worker process behind.

The speech model is the tiny random-weight checkpoint (its words are noise; the path is real);
the brain is the fallback builder only (brain.model = "none"), so a prompt comes in milliseconds.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from support.gui import pump, window_for
from support.shows import alive, children, show_config, until
from voicevibe.config import Config
from voicevibe.config_files import load_config
from voicevibe.testing.peer import OscPeer


class Lent:
    """Controls on the module's engines, lent to one window: closing the window leaves the engines loaded for
    the next test (the `controls_for` fixture closes the controls themselves)."""

    def __init__(self, target: Any) -> None:
        self._target = target

    @property
    def engines(self) -> Any:
        return Lent(self._target.engines)

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def pairs(peer: OscPeer) -> list[tuple[str, list[Any]]]:
    """What the render PC received so far, as (address, arguments)."""
    return [(m.address, m.params) for m in peer.messages]


def window_config(checkpoint: Path, peer: OscPeer, tmp_path: Path, *, realtime: bool, **sections: dict) -> Config:
    """A test show's config (support.shows.show_config) with the generic addresses and no recording."""
    return show_config(tmp_path, checkpoint, peer, **{"audio": {"realtime": realtime}, "osc": {"preset": "generic"},
                                                       "session": {"record_audio": "off"}, **sections})


@pytest.fixture
def threads_before() -> set[threading.Thread]:
    return set(threading.enumerate())


def test_rehearsal_fills_transcript_and_prompts_then_leaves_no_thread(
        tiny_checkpoint: Path, speech_wav: Path, peer: OscPeer, tmp_path: Path, display: str, guard: list[str],
        threads_before: set[threading.Thread]) -> None:
    """The one end-to-end rehearsal through the window on the real Mimi codec (rustymimi)."""
    config = window_config(tiny_checkpoint, peer, tmp_path, realtime=False)
    with window_for(config, guard, input_spec=str(speech_wav),
                    settings_file=tmp_path / "settings.toml") as w:
        assert w.ui.mode.get() == "File"
        w.start()
        pump(w.root, lambda: w.pipeline is None)  # the rehearsal file ran to its end
        transcript = w.ui.transcript.get("1.0", "end").strip()
        assert transcript and "⏎" in transcript
        assert w.ui.prompts.entries
        prompt, button = w.ui.prompts.entries[-1]
        assert prompt.source == "fallback" and prompt.text in button.cget("text")
        assert "log:" in w.ui.log_path.cget("text") and str(tmp_path / "log") in w.ui.log_path.cget("text")
        assert w.ui.stats.cget("text").startswith("speech real-time factor ")
        assert any(prompt.text in map(str, args) for _, args in pairs(peer))
    left = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert not left, left


def test_panic_and_freeze_keys_send_osc(controls_for, fast_checkpoint: Path, speech_wav: Path, peer: OscPeer,
                                        tmp_path: Path, display: str, guard: list[str]) -> None:
    config = window_config(fast_checkpoint, peer, tmp_path, realtime=True)
    with window_for(config, guard, input_spec=str(speech_wav),
                    settings_file=tmp_path / "settings.toml", controls=Lent(controls_for(config))) as w:
        w.start()
        w.root.focus_force()
        pump(w.root)
        w.root.event_generate("<Escape>")  # panic: the safe prompt at once, plus the flag
        pump(w.root, lambda: ("/panic", [1]) in pairs(peer))
        assert ("/prompt", [config.osc.panic_prompt]) in pairs(peer)
        w.root.event_generate("<Escape>")  # release
        w.root.event_generate("<Key-f>")  # freeze
        pump(w.root, lambda: ("/freeze", [1]) in pairs(peer))
        assert ("/panic", [0]) in pairs(peer)
        assert w.screen.panicked is False and w.screen.frozen is True


def test_sliders_change_the_engine_dsp(controls_for, fast_checkpoint: Path, speech_wav: Path, peer: OscPeer,
                                       tmp_path: Path, display: str, guard: list[str]) -> None:
    config = window_config(fast_checkpoint, peer, tmp_path, realtime=True)
    with window_for(config, guard, input_spec=str(speech_wav),
                    settings_file=tmp_path / "settings.toml", controls=Lent(controls_for(config))) as w:
        w.start()
        canvas = w.ui.gain.slider._canvas
        canvas.event_generate("<Button-1>", x=int(canvas.winfo_width() * 0.9), y=canvas.winfo_height() // 2)
        canvas = w.ui.gate.slider._canvas
        canvas.event_generate("<Button-1>", x=int(canvas.winfo_width() * 0.5), y=canvas.winfo_height() // 2)
        w.ui.agc.toggle()
        params = w.pipeline.dsp.params
        assert params.gain_db == w.ui.gain.value and params.gain_db > 12.0
        assert params.gate_threshold == w.ui.gate.value and 0.1 < params.gate_threshold < 0.2
        assert params.agc is False


def test_panic_and_typed_prompts_work_with_the_engine_stopped(controls_for, fast_checkpoint: Path, peer: OscPeer,
                                                              tmp_path: Path, display: str, guard: list[str]) -> None:
    config = window_config(fast_checkpoint, peer, tmp_path, realtime=True)
    with window_for(config, guard, settings_file=tmp_path / "settings.toml", controls=Lent(controls_for(config))) as w:
        assert w.pipeline is None
        w.screen.toggle_panic()
        pump(w.root, lambda: ("/panic", [1]) in pairs(peer))
        assert ("/prompt", [config.osc.panic_prompt]) in pairs(peer)
        w.screen.send_manual("a door left open")  # blocked: panic holds the screen
        w.screen.toggle_panic()
        w.screen.send_manual("a field of sunflowers")
        pump(w.root, lambda: ("/prompt", ["a field of sunflowers"]) in pairs(peer))
        assert ("/panic", [0]) in pairs(peer)
        assert ("/prompt", ["a door left open"]) not in pairs(peer)


NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900 (NTP's epoch) to 1970 (Unix's)


def ntp_seconds(timetag: str) -> float:
    """oscdump's time column (an NTP time tag, "seconds.fraction" in hex) in seconds."""
    seconds, fraction = timetag.split(".")
    return int(seconds, 16) + int(fraction, 16) / 2**32


def test_kill_9_of_the_speech_engine_mid_rehearsal_and_the_show_goes_on(
        fast_checkpoint: Path, speech_blocks: list, tmp_path: Path, display: str, guard: list[str], oscdump) -> None:
    """The window keeps answering, oscdump keeps hearing the heartbeat, a typed line reaches the screen during
    the outage, words come back after the restart, and the log says what happened."""
    port, lines = oscdump
    wav = tmp_path / "long.wav"
    soundfile.write(wav, np.concatenate(speech_blocks * 4), 24000)  # about 50 s of rehearsal at real time
    config = load_config([], [{"stt": {"model": str(fast_checkpoint)}, "audio": {"realtime": True},
                               "osc": {"targets": f"127.0.0.1:{port}", "preset": "generic", "heartbeat_seconds": 0.5},
                               "brain": {"model": "none"},
                               "session": {"log_dir": str(tmp_path / "logs"), "record_audio": "off"}}],
                         include_defaults_files=False)
    with window_for(config, guard, input_spec=str(wav), settings_file=tmp_path / "settings.toml") as w:
        ticks: list[float] = []

        def tick() -> None:
            ticks.append(time.monotonic())
            if not w.closed:
                w.root.after(20, tick)

        tick()
        w.start()
        pump(w.root, lambda: len(w.ui.transcript.get("1.0", "end").strip()) > 10)  # words are coming
        killed = w.engines.stt.worker.pid
        os.kill(killed, signal.SIGKILL)
        killed_at, killed_wall = time.monotonic(), time.time()
        pump(w.root, lambda: w.engines.stt.worker.state == "restarting")
        w.inputs.say("a lighthouse in the fog")
        pump(w.root, lambda: any(p.phrase == "a lighthouse in the fog" for p, _ in w.ui.prompts.entries))
        assert not w.engines.stt.worker.ready  # it reached the screen during the outage
        pump(w.root, lambda: w.engines.stt.worker.ready)
        back_at, back_wall = time.monotonic(), time.time()
        shown = len(w.ui.transcript.get("1.0", "end"))
        pump(w.root, lambda: len(w.ui.transcript.get("1.0", "end")) > shown + 10)  # words resume
        received: list[str] = []

        def heartbeats() -> list[float]:
            while not lines.empty():
                received.append(lines.get_nowait())
            return [ntp_seconds(line.split(" ")[0]) - NTP_UNIX_OFFSET for line in received
                    if line.split(" ")[1] == "/heartbeat"]

        pump(w.root, lambda: any(beat > back_wall for beat in heartbeats()))  # oscdump's output comes in bursts
        outage = [b - a for a, b in zip(ticks, ticks[1:]) if killed_at <= a <= back_at]
        log_path = w.pipeline.log_path
        w.stop()
        pump(w.root, lambda: w.pipeline is None and w._ending is None)
    assert outage and max(outage) < 1.0, f"the window stalled {max(outage):.2f} s"  # it kept answering
    assert not alive(killed)
    beats = heartbeats()
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    # heard before the kill and after the restart, never more than two intervals apart in between
    assert beats and beats[0] < killed_wall and beats[-1] > back_wall, (beats[:1], killed_wall, back_wall)
    assert max(gaps) <= 2 * 0.5, f"heartbeat gap {max(gaps):.2f} s"
    assert any('/prompt s "' in line and "lighthouse" in line for line in received)
    states = [(d["state"], d["message"]) for d in map(json.loads, log_path.read_text(encoding="utf-8").splitlines())
              if d["type"] == "worker" and d["stage"] == "stt"]
    crash = states.index(("restarting", "speech engine stopped (signal 9 (SIGKILL)): restarting in 0.5 s"))
    assert states[-1][0] == "ready" and crash < len(states) - 1  # the crash, then the restart


def test_stop_then_start_loads_no_model_again_and_closing_leaves_no_worker(
        fast_checkpoint: Path, speech_wav: Path, peer: OscPeer, tmp_path: Path, display: str,
        guard: list[str]) -> None:
    config = window_config(fast_checkpoint, peer, tmp_path, realtime=False, brain={"model": "bundled"})
    others = children(os.getpid())  # workers of engines other tests of this module share
    with window_for(config, guard, input_spec=str(speech_wav), settings_file=tmp_path / "settings.toml") as w:
        pump(w.root, lambda: w.engines.stt.worker.ready and w.engines.brain.worker.ready)  # loaded at open
        workers = children(os.getpid()) - others
        assert workers == {w.engines.stt.worker.pid, w.engines.brain.worker.pid}
        loads = w.ui.model_status.cget("text")
        for _ in range(2):
            w.start()
            pump(w.root, lambda: w.pipeline is None and w._ending is None)  # the rehearsal ran to its end
        assert children(os.getpid()) - others == workers  # the same two processes: nothing reloaded
        assert w.ui.model_status.cget("text") == loads
    until(lambda: not any(alive(pid) for pid in workers), timeout=30)
