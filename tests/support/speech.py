"""Real speech for tests: espeak-ng sentences in English and French with pauses between."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile

SENTENCES = [
    ("en", "The red balloon drifts over the quiet harbour at night."),
    ("fr", "Le soleil se couche sur la mer et les oiseaux chantent."),
    ("en", "A giant whale swims through a forest of glowing trees."),
]
PAUSE_SECONDS = 0.8


def write_speech(path: Path) -> Path:
    """Speak SENTENCES with espeak-ng into one mono WAV at espeak's own rate (22.05 kHz)."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError("espeak-ng is missing: the test setup installs it (apt-get install espeak-ng)")
    parts, rate = [], None
    for i, (voice, text) in enumerate(SENTENCES):
        part = path.with_name(f"{path.stem}-{i}.wav")
        subprocess.run([espeak, "-v", voice, "-s", "150", "-w", str(part), text], check=True)
        audio, rate = soundfile.read(part, dtype="float32")
        parts += [audio, np.zeros(int(PAUSE_SECONDS * rate), np.float32)]
        part.unlink()
    soundfile.write(path, np.concatenate(parts), rate)
    return path


def long_show(speech_blocks: list[np.ndarray], minutes: float, *, nonstop_from: float, nonstop_minutes: float,
              seed: int = 7) -> np.ndarray:
    """A long input as an (n, 1920) array: speech with pauses, and one stretch of non-stop sound.

    The non-stop stretch is noise that keeps getting louder, so no block in it is as quiet as
    the quietest recent ones: the engine must reset at its hard cap there, not at a pause.
    """
    block = speech_blocks[0].shape[0]
    n = round(minutes * 60 / (block / 24_000))
    start, length = round(nonstop_from * 60 * 12.5), round(nonstop_minutes * 60 * 12.5)
    out = np.stack([speech_blocks[i % len(speech_blocks)] for i in range(n)])
    ramp = np.linspace(0.02, 0.6, length * block, dtype=np.float32)
    noise = np.random.default_rng(seed).normal(0, 1, length * block).astype(np.float32) * ramp
    out[start:start + length] = np.clip(noise, -1, 1).reshape(length, block)
    return out
