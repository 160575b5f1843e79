"""The Mac-only behaviour, run on Linux by faking the platform: which Python will do, App Nap (through a stub
`Foundation` module standing in for pyobjc), keeping the Mac awake headless, and the denied-microphone
detector on real all-zero blocks from the PulseAudio virtual microphone."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from support import pulse
from support.shows import show_config  # noqa: E402
from voicevibe import cli, macos  # noqa: E402
from voicevibe.config import BLOCK, SAMPLE_RATE  # noqa: E402
from voicevibe.events import Status  # noqa: E402
from voicevibe.miccheck import DigitalSilence, level_check, silence_message  # noqa: E402
from voicevibe.pycheck import Facts, describe, notes, problems  # noqa: E402
from voicevibe.runtime.pipeline import Pipeline  # noqa: E402
from voicevibe.testing.peer import OscPeer

# pyobjc's own values (pyobjc-framework-Cocoa PyObjCTest/test_nsprocessinfo.py)
IDLE_SYSTEM_SLEEP = 1 << 20
USER_INITIATED = 0x00FFFFFF | IDLE_SYSTEM_SLEEP
LATENCY_CRITICAL = 0xFF00000000
IDLE_DISPLAY_SLEEP = 1 << 40
SILENCE_WAIT_S = 20.0


# ---- which Python ------------------------------------------------------------------------------

def test_python_3_10_to_3_12_on_an_arm64_mac_with_tk_is_fine() -> None:
    for minor in (10, 11, 12):
        assert problems(Facts((3, minor, 4), "darwin", "arm64", "8.6", "14.5")) == []
    assert problems(Facts((3, 12, 4), "linux", "x86_64", "8.6")) == []
    assert describe(Facts((3, 12, 4), "darwin", "arm64", "8.6", "14.5")) == "Python 3.12.4, Tk 8.6, arm64, macOS 14.5"


@pytest.mark.parametrize(("facts", "said"), [
    (Facts((3, 13, 1), "darwin", "arm64", "8.6", "14.5"), "needs Python 3.10-3.12 (moshi-mlx 0.3.0 pins sentencepiece"),
    (Facts((3, 13, 1), "linux", "x86_64", "8.6"), "install python3.12"),
    (Facts((3, 9, 6), "darwin", "arm64", "8.6", "14.5"), "Python 3.9.6: VoiceVibe needs Python 3.10-3.12"),
    (Facts((3, 12, 4), "darwin", "x86_64", "8.6", "14.5"), "runs as x86_64: MLX needs Apple Silicon"),
    (Facts((3, 12, 4), "darwin", "arm64", "8.6", "13.4"), "macOS 13.4: MLX 0.26 needs macOS 13.5 or newer"),
    (Facts((3, 12, 4), "darwin", "arm64", None, "14.5"), "has no Tk (tkinter)"),
    (Facts((3, 12, 4), "linux", "x86_64", None), "apt install python3-tk"),
])
def test_a_python_voicevibe_cannot_use_is_refused_with_the_fix(facts: Facts, said: str) -> None:
    [problem] = problems(facts)
    assert said in problem
    if facts.platform == "darwin":
        assert "python.org" in problem or "Software Update" in problem


def test_tk_9_on_a_mac_gets_advice_not_a_refusal() -> None:
    facts = Facts((3, 12, 4), "darwin", "arm64", "9.0", "15.1")
    assert problems(facts) == []
    [note] = notes(facts)
    assert "trackpad scrolling" in note and "Tk 8.6" in note
    assert notes(Facts((3, 12, 4), "linux", "x86_64", "9.0")) == []


# ---- App Nap, through a stub of pyobjc's Foundation --------------------------------------------

class StubProcessInfo:
    """Records activities as NSProcessInfo would hold them: each begin returns a fresh token."""

    def __init__(self) -> None:
        self.begun: list[tuple[int, str, object]] = []
        self.ended: list[object] = []

    def beginActivityWithOptions_reason_(self, options: int, reason: str) -> object:
        token = object()
        self.begun.append((options, reason, token))
        return token

    def endActivity_(self, token: object) -> None:
        self.ended.append(token)

    @property
    def held(self) -> int:
        return len(self.begun) - len(self.ended)


@pytest.fixture
def foundation(monkeypatch: pytest.MonkeyPatch) -> StubProcessInfo:
    """`import Foundation` gives a stub, and the platform is macOS (as far as voicevibe.macos knows)."""
    info = StubProcessInfo()
    stub = types.ModuleType("Foundation")
    stub.NSProcessInfo = SimpleNamespace(processInfo=lambda: info)
    stub.NSActivityUserInitiated = USER_INITIATED
    stub.NSActivityLatencyCritical = LATENCY_CRITICAL
    stub.NSActivityIdleDisplaySleepDisabled = IDLE_DISPLAY_SLEEP
    monkeypatch.setitem(sys.modules, "Foundation", stub)
    monkeypatch.setattr(macos, "PLATFORM", "darwin")
    return info


def test_an_activity_is_user_initiated_latency_critical_and_keeps_its_token(foundation: StubProcessInfo) -> None:
    activity = macos.Activity("a show")
    activity.begin()
    activity.begin()  # idempotent: one activity
    [(options, reason, token)] = foundation.begun
    assert options == USER_INITIATED | LATENCY_CRITICAL | IDLE_DISPLAY_SLEEP
    assert options & IDLE_SYSTEM_SLEEP  # user-initiated: no idle system sleep either
    assert reason == "a show" and activity.active
    activity.end()
    activity.end()
    assert foundation.ended == [token] and not activity.active  # the same token, given back once


def test_off_macos_no_activity_and_without_pyobjc_a_warning(monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "Foundation", None)  # `import Foundation` raises ImportError
    monkeypatch.setattr(macos, "PLATFORM", "linux")
    with macos.Activity() as activity:
        assert not activity.active
    assert not caplog.records
    monkeypatch.setattr(macos, "PLATFORM", "darwin")
    with macos.Activity() as activity:
        assert not activity.active
    assert "App Nap may slow the show down" in caplog.text and "setup.sh" in caplog.text


def test_a_show_holds_the_activity_from_start_to_stop(foundation: StubProcessInfo, tmp_path: Path) -> None:
    with OscPeer() as peer:
        pipeline = Pipeline(show_config(tmp_path, tmp_path / "no-model", peer), script=["a red lighthouse in a storm"])
        pipeline.start()
        assert foundation.held == 1
        assert pipeline.wait(60)
        assert foundation.held == 1  # still held while the show is on
        pipeline.stop()
    assert foundation.held == 0 and len(foundation.begun) == 1
    assert "VoiceVibe live show" in foundation.begun[0][1]


def test_headless_run_keeps_the_mac_awake_and_holds_the_activity(foundation: StubProcessInfo, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`run --no-gui` starts caffeinate -dimsu -w <its pid> (as the window does) and ends it after the show."""
    record = tmp_path / "caffeinate.txt"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "caffeinate").write_text(f'#!/bin/sh\necho "$@" > {record}\nexec sleep 60\n')
    (bin_dir / "caffeinate").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    script = tmp_path / "show.txt"
    script.write_text("a wolf under the frozen moon\n")
    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def watched(*args, **kwargs):  # keep the caffeinate process to see that it was ended
        proc = real_popen(*args, **kwargs)
        if "caffeinate" in str(args[0][0]):
            started.append(proc)
        return proc

    monkeypatch.setattr(subprocess, "Popen", watched)
    with OscPeer() as peer:
        code = cli.main(["run", "--no-gui", "--script", str(script), "--set", "brain.model=none",
                         "--osc", f"127.0.0.1:{peer.port}", "--set", f'session.log_dir="{tmp_path}"'])
    assert code == 0
    assert record.read_text().split() == ["-dimsu", "-w", str(os.getpid())]
    [caffeinate] = started
    assert caffeinate.poll() is not None, "caffeinate outlived the show"
    assert len(foundation.begun) == 1 and foundation.held == 0


# ---- a denied microphone: exact zeros ----------------------------------------------------------

def test_digital_silence_is_reported_once_after_a_second_and_rearmed_by_sound() -> None:
    watch = DigitalSilence()
    zeros, quiet = np.zeros(BLOCK, np.float32), np.full(BLOCK, 1e-7, np.float32)
    per_second = SAMPLE_RATE // BLOCK + 1  # 12.5 blocks of 80 ms
    assert [watch.step(zeros) for _ in range(per_second - 1)] == [False] * (per_second - 1)
    assert watch.step(zeros) is True
    assert not any(watch.step(zeros) for _ in range(50))  # said once
    assert watch.step(quiet) is False  # a real microphone's faintest noise is not silence
    assert [watch.step(zeros) for _ in range(per_second)][-1] is True  # said again after sound came and went
    almost = DigitalSilence()
    for _ in range(per_second - 2):
        almost.step(zeros)
    almost.step(np.r_[np.zeros(BLOCK - 1, np.float32), np.float32(0.01)])
    assert not any(almost.step(zeros) for _ in range(per_second - 2))


def test_the_silence_message_names_the_macos_privacy_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(macos, "PLATFORM", "darwin")
    text = silence_message("microphone 0 'MacBook Air Microphone'")
    assert "System Settings > Privacy & Security > Microphone" in text and "VoiceVibe (or Terminal" in text
    assert "channel 3 carries nothing" in silence_message("interface", channel=3)
    monkeypatch.setattr(macos, "PLATFORM", "linux")
    assert "Privacy" not in silence_message("mic") and "muted" in silence_message("mic")



@pytest.fixture(scope="module")
def tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tone") / "tone.wav"
    t = np.arange(3 * 48_000) / 48_000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48_000)
    return path


def test_the_virtual_mic_with_nothing_playing_gives_exact_zeros_and_a_tone_does_not(virtual_mic: pulse.VirtualMic,
                                                                                     tone: Path) -> None:
    """The detector on real blocks through PortAudio: a silent null sink is digital silence; a tone re-arms it."""
    silent = level_check(pulse.ALSA_DEVICE)
    assert silent.all_zero and silent.peak == 0.0 and silent.seconds >= 1.5
    player = virtual_mic.play(tone)
    try:
        time.sleep(0.3)
        heard = level_check(pulse.ALSA_DEVICE)
    finally:
        player.wait(10)
    assert not heard.all_zero and heard.peak > 0.1


def test_a_live_input_of_exact_zeros_becomes_a_status_naming_the_privacy_setting(
        virtual_mic: pulse.VirtualMic, fast_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole show on the virtual mic with nothing playing (what a denied permission gives on a Mac)."""
    monkeypatch.setattr(macos, "PLATFORM", "darwin")  # the message a Mac shows
    with OscPeer() as peer:
        config = show_config(tmp_path, fast_checkpoint, peer, audio={"realtime": True})
        pipeline = Pipeline(config, input_spec=pulse.ALSA_DEVICE)
        pipeline.start()
        try:
            found = None
            deadline = time.monotonic() + 120 + SILENCE_WAIT_S  # the tiny model loads first
            while found is None and time.monotonic() < deadline:
                try:
                    item = pipeline.events.get(timeout=1)
                except queue.Empty:
                    continue
                if isinstance(item, Status) and "digital silence" in item.message:
                    found = item
        finally:
            pipeline.stop()
    assert found is not None, "no digital-silence status"
    assert found.level == "error" and found.stage == "audio"
    assert "'pulse'" in found.message and "System Settings > Privacy & Security > Microphone" in found.message
    log = pipeline.log_path.read_text(encoding="utf-8")
    assert "digital silence" in log  # the session log keeps it too


def test_tests_keep_the_user_folders_in_a_temporary_home(user_state: Path) -> None:
    """platformdirs ignores XDG_* on macOS (~/Library/Logs, ~/Library/Application Support): HOME is temporary."""
    from voicevibe.config_files import settings_path, user_config_path
    from voicevibe.runtime.session import default_log_dir

    assert Path.home() == user_state
    for path in (default_log_dir(), settings_path(), user_config_path()):
        assert user_state in path.parents, path
    assert (user_state / ".cache").is_symlink()  # models and the assembled GGUF stay shared
