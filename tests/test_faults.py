"""Trusted on stage: faults mid-show and bad input that earlier tests did not already cover.

Covered elsewhere (see README "Trusted on stage"): unplugged mic at start (test_app), STT
step failure (test_app), disk full and unwritable log dir (test_session), truncated LM
weights and wrong config.json (test_stt), bad audio files and rates (test_audio), config
values and fuzzing (test_config), OSC control fuzzing (test_control).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from support.brains import crash_then_hang, crashes_always
from support.shows import drain, run_to_end, show_config
from support.threads import stage_threads
from voicevibe import osc, osc_targets
from voicevibe.audio import AudioError
from voicevibe.config import BLOCK, OscConfig
from voicevibe.events import ImagePrompt, SayText, Status, Stopped
from voicevibe.hub import ModelError, locate_stt
from voicevibe.runtime import audio_feed
from voicevibe.runtime.pipeline import Pipeline
from voicevibe.speech.engine import load_model
from voicevibe.testing.checkpoint import MIMI_NAME

# ---- the microphone goes away mid-show and comes back ------------------------------------------

class VanishingMic:
    """A fake device layer: the first stream dies after 40 blocks (unplugged), the next one ends after 40."""

    def __init__(self, opened: list[VanishingMic]) -> None:
        opened.append(self)
        self.first = len(opened) == 1
        self.dropped_blocks = 0
        self.name = f"fake mic, stream {len(opened)}"

    def __enter__(self) -> VanishingMic:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def stop(self) -> None:
        pass

    def blocks(self) -> Iterator[np.ndarray]:
        rng = np.random.default_rng(len(self.name))
        for _ in range(40):
            yield (0.3 * rng.standard_normal(BLOCK)).astype(np.float32)
        if self.first:
            raise AudioError("microphone 'USB Mic' stopped delivering audio (unplugged?)")


def test_a_mic_that_vanishes_mid_show_is_reopened_and_the_show_goes_on(tmp_path, fast_checkpoint, peer,
                                                                         monkeypatch):
    monkeypatch.setattr(audio_feed, "MIC_RETRY_SECONDS", 0.1)
    opened: list[VanishingMic] = []
    pipeline = Pipeline(show_config(tmp_path, fast_checkpoint, peer), input_spec="USB Mic",
                        source_opener=lambda spec, config: VanishingMic(opened))
    pipeline.start()
    pipeline.apply(SayText("a red lighthouse"))  # typed text works through it all
    assert pipeline.wait(120)
    pipeline.stop()
    events = drain(pipeline.events)
    assert len(opened) == 2
    errors = [e.message for e in events if isinstance(e, Status) and e.level == "error"]
    assert any("stopped delivering audio" in m and "retrying every 0.1 s" in m for m in errors)
    listening = [e.message for e in events if isinstance(e, Status) and e.message.startswith("listening to")]
    assert listening == ["listening to fake mic, stream 1", "listening to fake mic, stream 2"]
    # The same engine carried on across the gap: every block of both streams reached it once.
    assert pipeline.stt.counters.frames_in == pipeline.stt.counters.frames_fed == 80
    assert any(isinstance(e, ImagePrompt) and e.phrase == "a red lighthouse" for e in events)
    assert events[-1] == Stopped(None) and not stage_threads()


# ---- the OSC target dies and comes back ---------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_prompt(text: str) -> ImagePrompt:
    return ImagePrompt(text, text, "cinematic", "calm", "model")


def test_an_osc_target_that_dies_and_returns_gets_prompts_again_and_recovers():
    first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    first.bind(("127.0.0.1", 0))
    first.settimeout(5)
    port = first.getsockname()[1]
    clock, reports = FakeClock(), []
    with osc.OscSender(OscConfig(targets=f"127.0.0.1:{port}", send_json=False), reports.append,
                       clock=clock) as sender:
        assert sender.send_prompt(make_prompt("before")) is not None
        assert first.recv(65535)
        first.close()  # the render PC's receiver dies: ICMP refusals follow
        for i in range(4):
            sender.send_prompt(make_prompt(f"lost {i}"))  # never raises
        (status,) = sender.statuses()
        assert status.errors > 0 and status.failing
        second = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # it comes back on the same port
        second.bind(("127.0.0.1", port))
        second.settimeout(5)
        try:
            sent_before = status.sent
            assert sender.send_prompt(make_prompt("after")) is not None
            got = b"".join(second.recv(65535) for _ in range(3))
            assert b"after" in got
            (status,) = sender.statuses()
            assert status.sent > sent_before
            errors_then = status.errors
            sender.send_prompt(make_prompt("still there"))
            assert sender.statuses()[0].errors == errors_then  # no new errors once it is back
            clock.now += osc_targets.FAILING_SECONDS + 1
            (status,) = sender.statuses()
            assert not status.failing and status.last_send is not None
        finally:
            second.close()
    assert any(isinstance(r, Status) and f"127.0.0.1:{port}" in r.message for r in reports)


# ---- the brain crashes, then hangs ---------------------------------------------------------------

def test_a_brain_that_crashes_or_hangs_gives_fallback_prompts_and_the_show_goes_on(tmp_path, peer):
    script = ["a lighthouse in a storm", "a wolf under the moon", "a harbour at dawn"]
    config = show_config(tmp_path, "unused", peer, brain={"model": "bundled", "time_budget_seconds": 0.5})
    pipeline = Pipeline(config, script=script, brain_loader=crash_then_hang)
    events = run_to_end(pipeline, timeout=60)
    prompts = [e for e in events if isinstance(e, ImagePrompt)]
    # The crash: a fallback prompt for that phrase, saying why.
    assert [p.phrase for p in prompts] == script
    assert [p.source for p in prompts] == ["fallback", "fallback", "model"]
    assert "lighthouse" in prompts[0].text and prompts[0].reason == "model error (RuntimeError: llama.cpp exploded)"
    # The hang: abandoned at the time budget for the fallback prompt; then the model works again.
    assert "wolf" in prompts[1].text and "time budget" in prompts[1].reason
    assert [m.params[0] for m in peer.wait_for("/visual/prompt", 3)] == [p.text for p in prompts]
    assert events[-1] == Stopped(None)


# ---- model files ---------------------------------------------------------------------------------

def test_a_truncated_or_missing_mimi_codec_is_a_model_error_naming_it(tiny_plain, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_plain, broken, symlinks=False)
    mimi = broken / MIMI_NAME
    data = mimi.read_bytes()
    mimi.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelError, match=rf"{MIMI_NAME}: truncated .*download it again"):
        load_model(locate_stt(str(broken)), "f32", warmup=False)
    mimi.unlink()
    with pytest.raises(ModelError, match=rf"missing {MIMI_NAME}"):
        locate_stt(str(broken))


def test_a_config_json_for_another_model_size_is_a_model_error_naming_the_weights(tiny_plain, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_plain, broken, symlinks=False)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "dim": config["dim"] * 2}))
    with pytest.raises(ModelError, match=r"model.safetensors: weights do not match config.json"):
        load_model(locate_stt(str(broken)), "f32", warmup=False)


def test_moshi_warmup_guard_value_error_42_does_not_fail_the_load(tiny_plain, monkeypatch):
    """moshi_mlx's Lm.warmup() raises ValueError(42) when its random sample is token 42."""
    from moshi_mlx import models

    real = models.Lm.warmup

    def unlucky(self, *args, **kwargs):
        real(self, *args, **kwargs)
        raise ValueError(42)

    monkeypatch.setattr(models.Lm, "warmup", unlucky)
    model = load_model(locate_stt(str(tiny_plain)), "f32")
    assert all(layer.self_attn.length == 0 and layer.self_attn.offset == 0 for layer in model.lm.transformer_cache)


# ---- CLI misuse -------------------------------------------------------------------------------------

def voicevibe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "voicevibe", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


@pytest.mark.parametrize("args, says", [
    (["dance"], "unrecognized arguments: dance"),
    (["run", "--no-gui", "--volume", "11"], "unrecognized arguments: --volume 11"),
    (["run", "--no-gui", "--osc", "192.168.1.20", "--script", "-"], "192.168.1.20"),
    (["run", "--no-gui", "--osc", "host:99999", "--script", "-"], "99999"),
    (["run", "--no-gui", "--set", "osc", "--script", "-"], "osc"),
    (["run", "--no-gui", "--set", "audio.queue_seconds=-1", "--script", "-"], "queue_seconds"),
    (["run", "--no-gui", "--set", "brain.nope=1", "--script", "-"], "unknown key [brain] nope"),
    (["transcribe", "x.wav", "--channel", "2"], "unrecognized arguments: --channel 2"),
])
def test_cli_misuse_exits_2_with_a_message_naming_the_mistake(args, says):
    result = voicevibe(*args)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr and "Traceback" not in result.stderr


def test_replay_speed_zero_is_refused_before_sending(tmp_path):
    log = tmp_path / "show.jsonl"
    log.write_text(json.dumps({"type": "session_start", "mono": 0.0}) + "\n", encoding="utf-8")
    result = voicevibe("replay", str(log), "--speed", "0", "--osc", "127.0.0.1:9")
    assert result.returncode == 2 and "--speed 0.0: must be above 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_brain_model_that_crashes_at_warm_up_still_leaves_fallback_prompts(tmp_path, peer):
    pipeline = Pipeline(show_config(tmp_path, "unused", peer, brain={"model": "bundled"}),
                        script=["a lighthouse in a storm"], brain_loader=crashes_always)
    pipeline.start()
    finished = pipeline.wait(20)
    pipeline.stop()
    prompts = [e for e in drain(pipeline.events) if isinstance(e, ImagePrompt)]
    assert finished and [p.source for p in prompts] == ["fallback"]
