"""The window on the real Pipeline under Xvfb: a rehearsal fills the panes, panic and freeze go out
over OSC to a local UDP receiver, sliders reach the engine's DSP, closing leaves no thread behind.

The speech model is the tiny random-weight checkpoint (its words are noise; the path is real);
the brain is the fallback builder only, so a prompt comes in milliseconds.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from guitk import display, guard, pump, window_for  # noqa: F401 (fixtures)
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage

from voicevibe.app import Pipeline
from voicevibe.brain import LoadedModel
from voicevibe.config import Config, load_config


def fallback_only(config: Any, assets: Any) -> LoadedModel:
    return LoadedModel(None, "test: fallback prompts only")


def factory(config: Config, **kwargs: Any) -> Pipeline:
    return Pipeline(config, brain_loader=fallback_only, **kwargs)


class Receiver:
    """A local UDP socket standing in for the render PC; decodes OSC messages and bundles."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.messages: list[tuple[str, list[Any]]] = []

    def poll(self) -> list[tuple[str, list[Any]]]:
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return self.messages
            self.messages += _decode(data)

    def addresses(self) -> list[str]:
        return [address for address, _ in self.poll()]


def _decode(data: bytes) -> list[tuple[str, list[Any]]]:
    if OscBundle.dgram_is_bundle(data):
        return [m for content in OscBundle(data) for m in _decode(content.dgram)]
    message = OscMessage(data)
    return [(message.address, list(message.params))]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.sock.close()


def show_config(checkpoint: Path, receiver: Receiver, tmp_path: Path, *, realtime: bool) -> Config:
    return load_config([], [{"stt": {"model": str(checkpoint)}, "audio": {"realtime": realtime},
                             "osc": {"targets": f"127.0.0.1:{receiver.port}", "preset": "generic"},
                             "session": {"log_dir": str(tmp_path / "logs"), "record_audio": "off"}}],
                       include_defaults_files=False)


@pytest.fixture
def threads_before() -> set[threading.Thread]:
    return set(threading.enumerate())


def test_rehearsal_fills_transcript_and_prompts_then_leaves_no_thread(
        tiny_checkpoint: Path, speech_wav: Path, receiver: Receiver, tmp_path: Path, display: str, guard: list[str],
        threads_before: set[threading.Thread]) -> None:
    config = show_config(tiny_checkpoint, receiver, tmp_path, realtime=False)
    with window_for(config, guard, input_spec=str(speech_wav), pipeline_factory=factory,
                    settings_file=tmp_path / "settings.toml") as w:
        assert w.ui.mode.get() == "File"
        w.start()
        pump(w.root, lambda: w.pipeline is None)  # the rehearsal file ran to its end
        transcript = w.ui.transcript.get("1.0", "end").strip()
        assert transcript and "⏎" in transcript
        assert w.ui.prompts.entries
        prompt, button = w.ui.prompts.entries[-1]
        assert prompt.source == "fallback" and prompt.text in button.cget("text")
        assert "log:" in w.ui.log_path.cget("text") and str(tmp_path / "logs") in w.ui.log_path.cget("text")
        assert w.ui.stats.cget("text").startswith("STT real-time factor ")
        assert any(prompt.text in map(str, args) for _, args in receiver.poll())
    left = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert not left, left


def test_panic_and_freeze_keys_send_osc(tiny_checkpoint: Path, speech_wav: Path, receiver: Receiver,
                                        tmp_path: Path, display: str, guard: list[str]) -> None:
    config = show_config(tiny_checkpoint, receiver, tmp_path, realtime=True)
    with window_for(config, guard, input_spec=str(speech_wav), pipeline_factory=factory,
                    settings_file=tmp_path / "settings.toml") as w:
        w.start()
        w.root.focus_force()
        pump(w.root)
        w.root.event_generate("<Escape>")  # panic: the safe prompt at once, plus the flag
        pump(w.root, lambda: ("/panic", [1]) in receiver.poll())
        assert ("/prompt", [config.osc.panic_prompt]) in receiver.messages
        w.root.event_generate("<Escape>")  # release
        w.root.event_generate("<Key-f>")  # freeze
        pump(w.root, lambda: ("/freeze", [1]) in receiver.poll())
        assert ("/panic", [0]) in receiver.messages
        assert w.panicked is False and w.frozen is True


def test_sliders_change_the_engine_dsp(tiny_checkpoint: Path, speech_wav: Path, receiver: Receiver,
                                       tmp_path: Path, display: str, guard: list[str]) -> None:
    config = show_config(tiny_checkpoint, receiver, tmp_path, realtime=True)
    with window_for(config, guard, input_spec=str(speech_wav), pipeline_factory=factory,
                    settings_file=tmp_path / "settings.toml") as w:
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


def test_panic_and_typed_prompts_work_with_the_engine_stopped(tiny_checkpoint: Path, receiver: Receiver,
                                                              tmp_path: Path, display: str, guard: list[str]) -> None:
    config = show_config(tiny_checkpoint, receiver, tmp_path, realtime=True)
    with window_for(config, guard, pipeline_factory=factory, settings_file=tmp_path / "settings.toml") as w:
        assert w.pipeline is None
        w.toggle_panic()
        pump(w.root, lambda: ("/panic", [1]) in receiver.poll())
        assert ("/prompt", [config.osc.panic_prompt]) in receiver.messages
        w.send_manual("a door left open")  # blocked: panic holds the screen
        w.toggle_panic()
        w.send_manual("a field of sunflowers")
        pump(w.root, lambda: ("/prompt", ["a field of sunflowers"]) in receiver.poll())
        assert ("/panic", [0]) in receiver.messages
        assert ("/prompt", ["a door left open"]) not in receiver.messages
