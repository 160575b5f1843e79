"""What is expensive to make, made once per run: the random-weight checkpoints and the speech file.

Under pytest-xdist each worker is a session of its own: `built_once` builds into the run's folder
under a file lock, so the first process to ask builds and the others wait for it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock
from moshi_mlx import models

from support.speech import write_speech
from voicevibe.audio import FileSource
from voicevibe.testing.checkpoint import CONFIG_NAME, write_checkpoint


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Path:
    """A folder `build(folder)` fills once per run, whichever test process asks first.

    Under pytest-xdist each worker is a session of its own: the folder lives beside the workers'
    temporary folders, and a file lock makes the others wait for the first one's build.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, shared by its workers (removed with it)
    folder = root / "built" / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        done = folder.with_name(name + ".done")
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny `-candle`-style checkpoint: PyTorch tensor names plus 4 semantic-VAD heads, the real Mimi."""
    return built_once(tmp_path_factory, "stt-tiny-candle",
                      lambda out: write_checkpoint(out, "tiny", vad=True, seed=0))


@pytest.fixture(scope="session")
def fast_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny_checkpoint` with the tests' fast stand-in codec (testing/fastcodec.py) in place of Mimi:
    for the tests about flow (pipeline, workers, faults, window), where tokens are not the point."""
    return built_once(tmp_path_factory, "stt-tiny-candle-fast",
                      lambda out: write_checkpoint(out, "tiny", vad=True, seed=0, codec="fast"))


@pytest.fixture(scope="session")
def fast_plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MLX names, no VAD heads (resets come from quiet moments and the cap), the fast stand-in codec."""
    return built_once(tmp_path_factory, "stt-tiny-mlx-fast",
                      lambda out: write_checkpoint(out, "tiny", seed=0, codec="fast"))


@pytest.fixture(scope="session")
def tiny_checkpoint_mlx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny `-mlx`-style checkpoint: MLX tensor names, no VAD heads, plus model.q8.safetensors."""
    return built_once(tmp_path_factory, "stt-tiny-mlx",
                      lambda out: write_checkpoint(out, "tiny", seed=0, quantize=8))


@pytest.fixture(scope="session")
def tiny_lm_config(tiny_checkpoint: Path) -> models.LmConfig:
    """The moshi_mlx `LmConfig` of `tiny_checkpoint` (with its 4 extra heads)."""
    cfg = json.loads((tiny_checkpoint / CONFIG_NAME).read_text(encoding="utf-8"))
    return models.LmConfig.from_config_dict(cfg)


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 12 s of espeak-ng speech (English, French, English) with pauses, 22.05 kHz WAV."""
    def build(folder: Path) -> None:
        folder.mkdir()
        write_speech(folder / "speech.wav")

    return built_once(tmp_path_factory, "speech", build) / "speech.wav"


@pytest.fixture(scope="session")
def speech_blocks(speech_wav: Path) -> list[np.ndarray]:
    """`speech_wav` as the 1920-sample 24 kHz float32 blocks every source yields."""
    return list(FileSource(speech_wav, realtime=False).blocks())


@pytest.fixture(scope="session")
def tiny_plain(tiny_checkpoint_mlx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The MLX-named tiny checkpoint with its full-precision model.safetensors (no moshi_name)."""
    def build(folder: Path) -> None:
        folder.mkdir()
        for item in tiny_checkpoint_mlx.iterdir():
            (folder / item.name).symlink_to(item)
        (folder / "config.json").unlink()
        config = json.loads((tiny_checkpoint_mlx / "config.json").read_text())
        del config["moshi_name"]
        (folder / "config.json").write_text(json.dumps(config))

    return built_once(tmp_path_factory, "stt-tiny-plain", build)
