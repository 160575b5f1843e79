"""A live input that delivers exact zeros: how macOS answers an app without microphone permission.

macOS gives such an app a stream of 0.0 samples and no error (python-sounddevice #332, #267,
#196; PortAudio.jl #96). A real microphone in a silent room still has noise in its lowest
bits, so a whole second of exact zeros means the permission (or a muted or empty input),
never the room. `DigitalSilence` watches the raw blocks on the audio thread (before DSP, whose
gate makes silence on purpose); `level_check` listens to an input for a moment (`voicevibe doctor`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from voicevibe.audio import AudioError, MicSource
from voicevibe.config import SAMPLE_RATE
from voicevibe.events import Status
from voicevibe.macos import silent_input_fix

SILENT_SECONDS = 1.0  # this much exact-zero input from a live device is reported
CHECK_SECONDS = 1.5  # doctor's level check listens this long (the first blocks may be a start-up burst)
CHECK_TIMEOUT_SECONDS = 5.0


class DigitalSilence:
    """Counts consecutive exact-zero samples; `step` is True once when they reach `seconds`."""

    def __init__(self, seconds: float = SILENT_SECONDS, rate: int = SAMPLE_RATE) -> None:
        self.needed = round(seconds * rate)
        self.zeros = 0
        self.reported = False

    def step(self, block: np.ndarray) -> bool:
        """Look at one raw block; True the first time the silence has lasted long enough.

        Any non-zero sample re-arms it, so a permission granted and revoked is reported again.
        """
        if np.any(block):
            self.zeros = 0
            self.reported = False
            return False
        self.zeros += block.size
        if self.zeros >= self.needed and not self.reported:
            self.reported = True
            return True
        return False


def silence_message(device: str, channel: int = 1) -> str:
    """What the operator reads when `device` sends exact zeros."""
    empty = f" (or its channel {channel} carries nothing: pick another with --channel)" if channel > 1 else ""
    return (f"{device} delivers digital silence (exact zeros for {SILENT_SECONDS:g} s){empty}: "
            f"{silent_input_fix()}")


def silence_status(device: str, channel: int = 1) -> Status:
    """The error status the audio thread posts."""
    return Status("audio", silence_message(device, channel), "error")


@dataclass(frozen=True)
class LevelCheck:
    """What an input delivered for a moment: its peak, and whether every sample was exactly zero."""

    device: str
    seconds: float
    peak: float
    all_zero: bool


def level_check(spec: str | None, *, channel: int = 1, seconds: float = CHECK_SECONDS) -> LevelCheck:
    """Listen to an input for `seconds`; AudioError when it cannot be opened or gives no audio."""
    peak, zero, heard = 0.0, True, 0
    deadline = time.monotonic() + CHECK_TIMEOUT_SECONDS
    with MicSource(spec or None, channel=channel) as mic:
        label = mic.device.label()
        for block in mic.blocks():
            heard += block.size
            peak = max(peak, float(np.abs(block).max()))
            zero = zero and not np.any(block)
            if heard >= seconds * SAMPLE_RATE:
                break
            if time.monotonic() > deadline:
                raise AudioError(f"{label} gave {heard / SAMPLE_RATE:.1f} s of audio in "
                                 f"{CHECK_TIMEOUT_SECONDS:g} s — is it running?")
    return LevelCheck(label, heard / SAMPLE_RATE, peak, zero)
