"""`voicevibe doctor --speed`: the verdict from the numbers (pure, both outcomes), the speech sample's source by
platform, and the command run for real on the tiny checkpoint in its worker, with and without a brain."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voicevibe import cli
from voicevibe.config_files import load_config
from voicevibe.doctor import speed
from voicevibe.doctor.speed import BrainSpeed, SpeechSpeed, verdict

SCRIPTED_BRAIN = "voicevibe.testing.soak:scripted_brain"


def steps(ms: float, n: int = 100, spikes: int = 0, spike_ms: float = 0.0) -> SpeechSpeed:
    return SpeechSpeed(tuple([ms] * (n - spikes) + [spike_ms] * spikes), n * 0.08, 1.0)


def brain(*latencies: float, budget_ms: float = 4000.0) -> BrainSpeed:
    return BrainSpeed(latencies, budget_ms, 0, "test-brain")


def test_a_fast_machine_keeps_up() -> None:
    result = verdict(steps(30.0), brain(900.0, 1100.0, 1000.0))
    assert result.keeps_up and result.reasons == ()


def test_a_speech_engine_slower_than_real_time_cannot_keep_up() -> None:
    result = verdict(steps(81.0), brain(900.0))
    assert not result.keeps_up
    assert "needs 81 ms per 80 ms block" in result.reasons[0]


def test_a_brain_over_its_budget_cannot_keep_up() -> None:
    result = verdict(steps(30.0), brain(3000.0, 4500.0, 5000.0))
    assert not result.keeps_up
    assert "median answer (4500 ms) is over its budget (4000 ms" in result.reasons[0]


def test_tight_speech_and_spikes_keep_up_with_notes() -> None:
    result = verdict(steps(60.0, spikes=10, spike_ms=200.0), None)  # mean 74 ms: under 80, over 0.8 x 80
    assert result.keeps_up
    assert any("little headroom" in r for r in result.reasons)
    assert any("audio.queue_seconds absorbs it" in r for r in result.reasons)


def test_no_steps_at_all_cannot_keep_up() -> None:
    assert not verdict(SpeechSpeed((), 0.0, 0.0), None).keeps_up


@pytest.mark.parametrize(("platform", "tool"), [("darwin", "say"), ("linux", "espeak-ng")])
def test_the_sample_is_spoken_by_the_platform_synthesizer(platform: str, tool: str) -> None:
    found, _ = speed.synthesizer(platform, lambda name: f"/usr/bin/{name}" if name == tool else None)
    assert found == f"/usr/bin/{tool}"
    missing, fix = speed.synthesizer(platform, lambda name: None)
    assert missing == "" and fix


def test_no_synthesizer_says_so_and_times_a_generated_signal(tmp_path: Path) -> None:
    blocks, made = speed.sample_blocks("darwin", tmp_path, which=lambda name: None)
    assert "no speech synthesizer found (say)" in made and "generated signal" in made
    assert len(blocks) == 250 and all(b.shape == (1920,) for b in blocks)


def check_report(out: str, code: int) -> None:
    """The printed structure, and an exit code that matches the printed verdict."""
    assert out.startswith("VoiceVibe doctor --speed: can this machine keep up?")
    assert re.search(r"speech engine  real-time factor \d+\.\d\d \(\d+\.\d ms of compute per 80 ms of audio; "
                     r"20 s of audio", out), out
    assert re.search(r"speech step    p50 \d+\.\d ms, p95 \d+\.\d ms, max \d+\.\d ms over 24\d steps "
                     r"\(budget 80 ms per step\)", out), out
    rtf = float(re.search(r"real-time factor (\d+\.\d\d)", out).group(1))
    keeps_up = "Verdict: this machine keeps up." in out
    assert keeps_up != ("Verdict: this machine cannot keep up" in out)
    assert code == (0 if keeps_up else 1)
    if rtf >= 1.0:
        assert not keeps_up


def test_the_command_times_the_tiny_checkpoint_without_a_brain(fast_checkpoint: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["doctor", "--speed", "--model", str(fast_checkpoint), "--set", "brain.model=none"])
    out = capsys.readouterr().out
    check_report(out, code)
    assert "sample         20 s of speech made with espeak-ng" in out
    assert 'brain          not timed: brain.model is "none"' in out


def test_the_command_times_the_brain_and_works_without_a_synthesizer(fast_checkpoint: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    config = load_config(overrides=[{"stt": {"model": str(fast_checkpoint)}, "brain": {"model": "bundled"}}],
                         include_defaults_files=False)
    code = speed.main(config, brain_loader=SCRIPTED_BRAIN, platform="darwin", which=lambda name: None)
    out = capsys.readouterr().out
    check_report(out, code)
    assert "no speech synthesizer found (say)" in out
    assert re.search(r"brain          median \d+ ms over 3 phrases \(budget 4000 ms\), 0 fallback prompt\(s\); "
                     r"soak-scripted", out), out


def test_a_brain_over_its_budget_fails_the_command_and_what_it_said_while_loading_is_shown(
        fast_checkpoint: Path, capsys: pytest.CaptureFixture) -> None:
    config = load_config(overrides=[{"stt": {"model": str(fast_checkpoint)},
                                     "brain": {"model": "bundled", "time_budget_seconds": 0.3}}],
                         include_defaults_files=False)
    code = speed.main(config, brain_loader="support.brains:too_slow_standing_in")
    out = capsys.readouterr().out
    assert code == 1, out
    assert re.search(r"brain          median \d+ ms over 3 phrases \(budget 300 ms\), 3 fallback prompt\(s\)", out), out
    assert "brain said     the configured brain model is not on disk: too-slow stands in" in out
    assert "is over its budget (300 ms, brain.time_budget_seconds)" in out
    assert "Verdict: this machine cannot keep up (see above)." in out
