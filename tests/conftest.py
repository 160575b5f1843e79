"""Shared fixtures: tiny random-weight Kyutai STT checkpoints, built once per session."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from moshi_mlx import models

from voicevibe.testing.checkpoint import CONFIG_NAME, write_checkpoint


REAL_CACHE = Path.home() / ".cache"  # models and the assembled bundled GGUF stay shared between tests


@pytest.fixture(autouse=True)
def user_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test, and every process it starts, gets its own empty user config and log dirs.

    Linux: platformdirs reads XDG_*. macOS: platformdirs ignores XDG and uses ~/Library (Logs,
    Application Support), so HOME itself points at a fresh folder, whose .cache is the real one.
    """
    home = tmp_path_factory.mktemp("user")
    REAL_CACHE.mkdir(parents=True, exist_ok=True)
    (home / ".cache").symlink_to(REAL_CACHE, target_is_directory=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    return home


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny `-candle`-style checkpoint: PyTorch tensor names plus 4 semantic-VAD heads."""
    return write_checkpoint(tmp_path_factory.mktemp("stt-tiny-candle"), "tiny", vad=True, seed=0)


@pytest.fixture(scope="session")
def tiny_checkpoint_mlx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny `-mlx`-style checkpoint: MLX tensor names, no VAD heads, plus model.q8.safetensors."""
    return write_checkpoint(tmp_path_factory.mktemp("stt-tiny-mlx"), "tiny", seed=0, quantize=8)


@pytest.fixture(scope="session")
def tiny_lm_config(tiny_checkpoint: Path) -> models.LmConfig:
    """The moshi_mlx `LmConfig` of `tiny_checkpoint` (with its 4 extra heads)."""
    cfg = json.loads((tiny_checkpoint / CONFIG_NAME).read_text(encoding="utf-8"))
    return models.LmConfig.from_config_dict(cfg)


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 12 s of espeak-ng speech (English, French, English) with pauses, 22.05 kHz WAV."""
    from speech import write_speech

    return write_speech(tmp_path_factory.mktemp("speech") / "speech.wav")


@pytest.fixture(scope="session")
def speech_blocks(speech_wav: Path) -> list:
    """`speech_wav` as the 1920-sample 24 kHz float32 blocks every source yields."""
    from voicevibe.audio import FileSource

    return list(FileSource(speech_wav, realtime=False).blocks())


@pytest.fixture(scope="session")
def tiny_plain(tiny_checkpoint_mlx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The MLX-named tiny checkpoint with its full-precision model.safetensors (no moshi_name)."""
    folder = tmp_path_factory.mktemp("stt-tiny-plain")
    for item in tiny_checkpoint_mlx.iterdir():
        (folder / item.name).symlink_to(item)
    (folder / "config.json").unlink()
    config = json.loads((tiny_checkpoint_mlx / "config.json").read_text())
    del config["moshi_name"]
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def virtual_mic(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A private PulseAudio null sink as the microphone (tests/pulse.py): nothing played = exact zeros.

    Fails, never skips, when it cannot start (but on macOS, where PulseAudio is not the sound system).
    """
    import pulse
    from platforms import PULSE, skip_on_mac

    skip_on_mac(PULSE)
    try:
        with pulse.virtual_mic(tmp_path_factory.mktemp("pulse")) as mic:
            yield mic
    except pulse.PulseError as e:
        pytest.fail(f"PulseAudio virtual microphone unavailable: {e}", pytrace=False)
