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
