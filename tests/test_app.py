"""The pipeline end to end: rehearsal file or script -> STT -> brain -> OSC, log, controls, faults."""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from support.osc import dump_lines
from support.shows import Collector, drain, run_to_end, show_config, until
from support.threads import stage_threads
from voicevibe.audio import AudioError
from voicevibe.config import BLOCK
from voicevibe.events import (
    ImagePrompt,
    Levels,
    Panic,
    PipelineStats,
    SayText,
    SendPrompt,
    SetAgc,
    SetGain,
    SetGate,
    SetStyle,
    Status,
    Stopped,
    Word,
)
from voicevibe.runtime import audio_feed
from voicevibe.runtime import pipeline as pipeline_module
from voicevibe.runtime.pipeline import Pipeline
from voicevibe.testing.faults import stt_failing_at


def test_rehearsal_file_reaches_osc_and_the_log(tmp_path, fast_checkpoint, speech_wav, peer):
    pipeline = Pipeline(show_config(tmp_path, fast_checkpoint, peer), input_spec=str(speech_wav))
    events = run_to_end(pipeline)
    words = [e for e in events if isinstance(e, Word)]
    prompts = [e for e in events if isinstance(e, ImagePrompt)]
    assert words and prompts
    assert any(isinstance(e, Levels) for e in events)
    assert events[-1] == Stopped(None)
    # Every prompt went out on the VoceVibe address, in order, exactly as made.
    sent = peer.wait_for("/visual/prompt", len(prompts))
    assert [m.params[0] for m in sent] == [p.text for p in prompts]
    # Latency stamps run in order: the phrase closed, the brain took it, the prompt was ready.
    assert all(0 < p.phrase_closed_at <= p.brain_start <= p.brain_end for p in prompts)
    # The log has every word and every prompt, with monotonic stamps.
    lines = [json.loads(line) for line in pipeline.log_path.read_text(encoding="utf-8").splitlines()]
    assert [d["text"] for d in lines if d["type"] == "word"] == [w.text for w in words]
    assert [d["text"] for d in lines if d["type"] == "image_prompt"] == [p.text for p in prompts]
    assert all("mono" in d for d in lines)
    assert not stage_threads(), "a stage thread outlived stop()"


def test_script_lines_each_get_a_prompt_in_order(tmp_path, peer):
    script = ["# the opening", "", "a red lighthouse in a storm", "un chat noir sur le toit",
              "the city wakes up under snow"]
    pipeline = Pipeline(show_config(tmp_path, "unused", peer), script=script)
    events = run_to_end(pipeline)
    prompts = [e for e in events if isinstance(e, ImagePrompt)]
    assert [p.phrase for p in prompts] == script[2:]
    assert "lighthouse" in prompts[0].text and "cat" in prompts[1].text
    assert [m.params[0] for m in peer.wait_for("/visual/prompt", 3)] == [p.text for p in prompts]
    assert not any(isinstance(e, Word) for e in events)  # no audio stage ran
    assert not stage_threads()


def test_a_missing_speech_model_is_reported_and_typed_text_still_works(tmp_path, peer, speech_wav):
    pipeline = Pipeline(show_config(tmp_path, tmp_path / "no-model-here", peer), input_spec=str(speech_wav))
    pipeline.start()
    pipeline.apply(SayText("a lighthouse in the fog"))
    assert pipeline.wait(60)
    pipeline.stop()
    events = drain(pipeline.events)
    errors = [e.message for e in events if isinstance(e, Status) and e.level == "error"]
    assert any("no-model-here" in m for m in errors)
    assert [e.phrase for e in events if isinstance(e, ImagePrompt)] == ["a lighthouse in the fog"]
    assert "no-model-here" in events[-1].error


def test_an_stt_failure_restarts_the_stage_and_the_show_goes_on(tmp_path, fast_checkpoint, speech_wav, peer):
    pipeline = Pipeline(show_config(tmp_path, fast_checkpoint, peer), input_spec=str(speech_wav),
                        stt_loader=functools.partial(stt_failing_at, block=20))
    events = run_to_end(pipeline)
    assert pipeline.stats().stt_restarts == 1
    assert any(isinstance(e, Status) and "restarted with fresh state" in e.message for e in events)
    assert pipeline.stt.counters.frames_in > 40  # a fresh engine took the rest of the file
    assert any(isinstance(e, Word) for e in events) and events[-1] == Stopped(None)


class FlakyMic:
    """A fake microphone: the first open fails (unplugged), the second yields some blocks."""

    opens = 0

    def __init__(self) -> None:
        FlakyMic.opens += 1
        if FlakyMic.opens == 1:
            raise AudioError("microphone 'USB Mic' not found — plug it in")
        self.dropped_blocks = 0
        self._stop = threading.Event()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()

    def blocks(self):
        rng = np.random.default_rng(0)
        for _ in range(30):
            if self._stop.is_set():
                return
            yield (0.3 * rng.standard_normal(BLOCK)).astype(np.float32)
        while not self._stop.wait(0.05):
            pass  # a live input never ends by itself


def test_an_unplugged_mic_is_retried_until_it_comes_back(tmp_path, fast_checkpoint, peer, monkeypatch):
    FlakyMic.opens = 0
    monkeypatch.setattr(audio_feed, "open_source", lambda spec, config: FlakyMic())
    monkeypatch.setattr(audio_feed, "MIC_RETRY_SECONDS", 0.1)
    monkeypatch.setattr(audio_feed, "describe", lambda source: "fake mic")
    pipeline = Pipeline(show_config(tmp_path, fast_checkpoint, peer), input_spec="USB Mic")
    pipeline.start()
    levels = 0
    while levels < 30:
        item = pipeline.events.get(timeout=60)
        levels += isinstance(item, Levels)
    assert not pipeline.wait(0)  # a microphone never ends the show by itself
    pipeline.stop()
    events = drain(pipeline.events)
    assert FlakyMic.opens == 2
    assert events[-1] == Stopped(None)
    assert not stage_threads()


def test_controls_reach_the_stages(tmp_path, peer):
    pipeline = Pipeline(show_config(tmp_path, "unused", peer), script=[])
    pipeline.start()
    for command in (SetGain(6.0), SetGate(0.1), SetAgc(False), SetStyle("synthwave")):
        pipeline.apply(command)
    assert (pipeline.dsp.params.gain_db, pipeline.dsp.params.gate_threshold, pipeline.dsp.params.agc) \
        == (6.0, 0.1, False)
    pipeline.apply(SayText("neon rain over the harbour"))
    assert pipeline.wait(30)
    pipeline.apply(Panic(True))
    pipeline.apply(SendPrompt("this must not reach the screen during panic"))
    pipeline.apply(Panic(False))
    pipeline.apply(SendPrompt("a field of sunflowers"))
    pipeline.stop()
    events = drain(pipeline.events)
    prompt = next(e for e in events if isinstance(e, ImagePrompt))
    assert prompt.style == "synthwave"
    texts = [m.params[0] for m in peer.wait_for("/visual/prompt", 3)]
    assert texts == [prompt.text, pipeline.config.osc.panic_prompt, "a field of sunflowers"]
    log_lines = [json.loads(x) for x in pipeline.log_path.read_text(encoding="utf-8").splitlines()]
    controls = [d for d in log_lines if d["type"] == "control"]
    assert {d["action"] for d in controls} >= {"set_gain", "set_style", "panic"}
    assert {"action": "set_gain", "db": 6.0} == {k: controls[0][k] for k in ("action", "db")}
    with pytest.raises(TypeError, match="not a command"):
        pipeline.apply("gain")  # type: ignore[arg-type]


def test_a_busy_control_port_leaves_the_show_running_and_a_failed_start_leaves_nothing_open(tmp_path, peer,
                                                                                            monkeypatch):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        config = show_config(tmp_path, "unused", peer, control={"enabled": True, "port": busy.getsockname()[1]})
        pipeline = Pipeline(config, script=["a red lighthouse"])
        pipeline.start()
        assert pipeline.wait(30)
        pipeline.stop()
    events = drain(pipeline.events)
    assert any(isinstance(e, Status) and e.stage == "control" and e.level == "error" and "off for this show"
               in e.message for e in events)
    assert any(isinstance(e, ImagePrompt) for e in events)
    # A start that fails half-way closes what it opened (the log) and leaves no thread.
    def broken(*args, **kwargs):
        raise OSError("no more sockets")

    monkeypatch.setattr(pipeline_module, "Health", broken)
    failing = Pipeline(show_config(tmp_path / "second", "unused", peer), script=["x"])
    with pytest.raises(OSError, match="no more sockets"):
        failing.start()
    (log_file,) = (tmp_path / "second" / "log").glob("*.jsonl")
    assert json.loads(log_file.read_text(encoding="utf-8").splitlines()[-1])["type"] == "session_end"
    assert not stage_threads()


def test_stats_report_the_log_and_the_stt_speed(tmp_path, fast_checkpoint, speech_wav, peer, controls_for):
    controls = controls_for(show_config(tmp_path, fast_checkpoint, peer, audio={"realtime": True}))
    pipeline = Pipeline(controls.config, controls=controls, input_spec=str(speech_wav))
    pipeline.start()
    try:
        seen = Collector(pipeline)
        stats = until(lambda: [s for s in seen.of(PipelineStats) if s.stt_rtf > 0])[-1]
    finally:
        pipeline.stop()
    assert stats.log_path == str(pipeline.log_path) and 0 < stats.stt_rtf < 50


# ---- the headless command, heard by the independent receiver (liblo's oscdump) -------------

def voicevibe(*args: str, env_extra: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}  # no network here, as on a stage without it
    return subprocess.run([sys.executable, "-m", "voicevibe", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env=env, timeout=timeout)


def shown_prompts(stdout: str) -> list[str]:
    """The prompts the terminal front end printed (`  => TEXT   [source ...]`)."""
    return [re.fullmatch(r"  => (.*)   \[.*\]", line).group(1) for line in stdout.splitlines()
            if line.startswith("  => ")]


def dumped(lines: list[str], address: str) -> list[str]:
    """oscdump lines `<time> /address s "text"` on one address -> the strings."""
    return [re.fullmatch(r'\S+ (\S+) s "(.*)"', line).group(2) for line in lines if line.split(" ")[1] == address]


def test_headless_rehearsal_prompts_reach_oscdump(tmp_path, fast_checkpoint, speech_wav, oscdump):
    port, lines = oscdump
    result = None

    def run() -> None:
        nonlocal result
        result = voicevibe("run", "--no-gui", "--input", str(speech_wav), "--fast", "--model", str(fast_checkpoint),
                           "--osc", f"127.0.0.1:{port}", "--preset", "vocevibe", "--set", "brain.model=none",
                           "--set", f"session.log_dir={json.dumps(str(tmp_path))}")

    got = dump_lines(port, lines, run)
    assert result.returncode == 0, result.stderr
    prompts = shown_prompts(result.stdout)
    assert prompts and dumped(got, "/visual/prompt") == prompts
    assert len(dumped(got, "/visual/style")) == len(prompts)
    assert "latency per stage" in result.stderr


def test_headless_script_with_the_default_brain_then_replay(tmp_path, oscdump):
    """The real default brain (offline: the bundled Gemma 3 270M) makes English prompts from a script;
    transcript phrases go out with their accents; `voicevibe replay` sends the same prompts again."""
    port, lines = oscdump
    script = tmp_path / "show.txt"
    phrases = ["la cathédrale s'effondre dans la mer", "a wolf howls at the frozen moon"]
    script.write_text("\n".join(phrases) + "\n", encoding="utf-8")
    result = None

    def run() -> None:
        nonlocal result
        result = voicevibe("run", "--no-gui", "--script", str(script), "--osc", f"127.0.0.1:{port}",
                           "--set", "osc.send_transcript=true", "--set", f"session.log_dir={json.dumps(str(tmp_path))}")

    got = dump_lines(port, lines, run)
    assert result.returncode == 0, result.stderr
    assert "gemma-3-270m" in result.stderr  # it says which model it runs
    prompts = shown_prompts(result.stdout)
    assert len(prompts) == 2 and dumped(got, "/visual/prompt") == prompts
    assert dumped(got, "/visual/transcript") == phrases  # UTF-8, accents included, decoded exactly
    log_path = Path(re.search(r"session log: (\S+)", result.stderr).group(1))
    replayed = None

    def replay() -> None:
        nonlocal replayed
        replayed = voicevibe("replay", str(log_path), "--osc", f"127.0.0.1:{port}", "--speed", "20")

    again = dump_lines(port, lines, replay)
    assert replayed.returncode == 0, replayed.stderr
    assert dumped(again, "/visual/prompt") == prompts
