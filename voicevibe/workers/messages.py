"""What crosses the pipe between the main process and a model's worker process: frozen dataclasses only.

`ToWorker` are the main process's messages, `FromWorker` the worker's; the speech and brain
workers each use their part. Events of the show (words, prompts, statuses) travel inside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from voicevibe.config import BrainConfig, SttConfig
from voicevibe.events import (
    ImagePrompt,
    MakeSummary,
    PauseBrain,
    Phrase,
    ResetMemory,
    SpeechEvent,
    Status,
    Summary,
)


@dataclass(frozen=True)
class Shutdown:
    """Main -> worker: finish and exit."""


@dataclass(frozen=True)
class WorkerLoading:
    """Worker -> main: loading its model; `progress` 0..1 when known."""

    message: str
    progress: float | None = None


@dataclass(frozen=True)
class WorkerReady:
    """Worker -> main: the model is loaded and warm; `detail` says which and how."""

    detail: str


@dataclass(frozen=True)
class WorkerFailed:
    """Worker -> main: the model cannot load; the message names the file and the fix. The worker exits."""

    message: str


@dataclass(frozen=True)
class SttBegin:
    """Main -> STT worker: a new stream starts (fresh model state) with these settings."""

    config: SttConfig


@dataclass(frozen=True)
class AudioBlock:
    """Main -> STT worker: one conditioned 80 ms block: 1920 float32 samples at 24 kHz, as raw bytes
    (pickling bytes costs a fifth of pickling the array: bench/RESULTS-workers.md)."""

    seq: int
    pcm: bytes

    @classmethod
    def of(cls, seq: int, samples: np.ndarray) -> AudioBlock:
        """A block from its samples."""
        return cls(seq, np.ascontiguousarray(samples, dtype=np.float32).tobytes())

    def samples(self) -> np.ndarray:
        """The samples again (read-only view of the bytes)."""
        return np.frombuffer(self.pcm, dtype=np.float32)


@dataclass(frozen=True)
class SttFlush:
    """Main -> STT worker: the input ended; feed silence so the last words come out."""

    seq: int


@dataclass(frozen=True)
class SttCounters:
    """The STT engine's counters for the current stream."""

    frames_in: int = 0  # audio blocks received
    frames_fed: int = 0  # audio frames whose codes reached the LM
    steps: int = 0  # LM steps, flush steps included
    resets: int = 0
    max_segment: int = 0  # the segment cap, in blocks
    step_errors: int = 0  # step exceptions recovered with fresh state


@dataclass(frozen=True)
class SttStepped:
    """STT worker -> main: the events of one block (or of the flush, `flushed` true)."""

    seq: int
    events: tuple[SpeechEvent | Status, ...]
    seconds: float  # compute time in the worker
    counters: SttCounters = field(default_factory=SttCounters)
    flushed: bool = False
    stepped: bool = True  # False: a block of a skipped backlog, answered unstepped (its 0 s is no compute time)
    sent_at: float = 0.0  # time.monotonic() in the worker when it sent this (the clock is system-wide)


@dataclass(frozen=True)
class SttMemoryQuery:
    """Main -> STT worker: report MLX's memory figures (answered between blocks)."""

    seq: int


@dataclass(frozen=True)
class SttMemory:
    """STT worker -> main: MLX's memory in bytes: in use by arrays, the most ever in use, freed buffers kept
    for reuse, and the cap on those."""

    seq: int
    active: int
    peak: int
    cache: int
    cache_limit: int


@dataclass(frozen=True)
class BrainPhrase:
    """Main -> brain worker: a phrase to answer; `seq` numbers phrases for the idle and hang checks."""

    seq: int
    phrase: Phrase


@dataclass(frozen=True)
class BrainConfigure:
    """Main -> brain worker: the brain's settings, whole (style, vibe, history, rate, budget...): every change
    that needs no reload, an operator's included."""

    config: BrainConfig


@dataclass(frozen=True)
class BrainTook:
    """Brain worker -> main: it started answering the phrases up to `seq` (merged into one)."""

    seq: int


@dataclass(frozen=True)
class BrainAnswer:
    """Brain worker -> main: the answer to the phrases up to `seq` (None: paused, stale or blocked,
    or, with `error`, a step that failed: the main process answers with the fallback)."""

    seq: int
    prompt: ImagePrompt | None
    error: str = ""


@dataclass(frozen=True)
class BrainSummary:
    """Brain worker -> main: a summary of the session."""

    summary: Summary


Lifecycle = WorkerLoading | WorkerReady | WorkerFailed  # any worker, while it loads its model
ToSpeech = SttBegin | AudioBlock | SttFlush | SttMemoryQuery | Shutdown
FromSpeech = Lifecycle | SttStepped | SttMemory
ToBrain = BrainPhrase | BrainConfigure | PauseBrain | ResetMemory | MakeSummary | Shutdown  # settings go whole
FromBrain = Lifecycle | BrainTook | BrainAnswer | BrainSummary | Status
ToWorker = ToSpeech | ToBrain
FromWorker = FromSpeech | FromBrain
