"""A simulated show through the whole Pipeline, faster than real time: the soak harness.

Used by `bench/soak.py` (three hours, memory curve) and `tests/test_soak.py` (minutes,
functional checks). Everything is real except three seams: the input is generated block by
block (speech with pauses, one long stretch of non-stop sound), the brain is a scripted
PromptModel, and a checkpoint written with `codec="fast"` carries a cheap deterministic
stand-in for the Mimi encoder (testing/fastcodec.py; rustymimi costs ~62 ms per 80 ms block on
this CPU, so it alone would make a 3 h soak take 2.5 h). The stand-in exercises everything but
rustymimi: the LM, its caches and resets, DSP, brain, OSC, the session log and its recorder.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voicevibe.brain.prompting import LoadedModel, PromptRequest
from voicevibe.config import BLOCK, FRAME_SECONDS, Config
from voicevibe.config_files import load_config
from voicevibe.events import ImagePrompt, Phrase, PipelineStats, SegmentReset, Status, Stopped, Word
from voicevibe.hub import locate_stt
from voicevibe.runtime.memory import MB, MemoryReport, process_rss
from voicevibe.runtime.outbox import QUEUE_SIZE as OUTBOX_SIZE
from voicevibe.runtime.pipeline import Pipeline
from voicevibe.testing.fastcodec import is_fast_codec
from voicevibe.testing.peer import OscPeer

BLOCKS_PER_MINUTE = round(60 / FRAME_SECONDS)
SOAK_PROMPTS = ("a lighthouse in a violet storm", "a fox made of paper in the snow",
                "neon rain over an empty harbour", "a whale swimming through a forest of lanterns")


def scripted_brain(config: Any, assets: Any) -> LoadedModel:
    """The brain worker's loader for a soak: the scripted model."""
    return LoadedModel(ScriptedBrainModel())


class ScriptedBrainModel:
    """A fast PromptModel: a fixed rotation of prompts, counted."""

    name = "soak-scripted"

    def __init__(self) -> None:
        self.calls = 0
        self.summaries = 0

    def generate(self, request: PromptRequest, should_stop: Any) -> str:
        """A JSON answer like the real model's, instantly."""
        self.calls += 1
        prompt = SOAK_PROMPTS[self.calls % len(SOAK_PROMPTS)]
        return json.dumps({"style": "cinematic", "prompt": prompt, "mood": "calm"})

    def summarize(self, request: Any, should_stop: Any) -> str:
        """A summary answer like the real model's, instantly."""
        self.summaries += 1
        return json.dumps({"summary": f"So far, summary number {self.summaries} of the soak show.",
                           "prompt": SOAK_PROMPTS[self.summaries % len(SOAK_PROMPTS)]})


class ShowSource:
    """A generated show as a Pipeline source: speech with pauses, one stretch of non-stop sound.

    Blocks are made on the fly (hours never sit in memory). Between `nonstop_from` and
    `nonstop_from + nonstop_minutes` the input is noise that keeps getting louder, so no block
    is quiet: the engine must reset at its hard cap there, not at a pause.
    """

    name = "generated show"

    def __init__(self, speech_blocks: list[np.ndarray], minutes: float, *, nonstop_from: float,
                 nonstop_minutes: float, seed: int = 7) -> None:
        self.speech = speech_blocks
        self.total = round(minutes * BLOCKS_PER_MINUTE)
        self.nonstop = (round(nonstop_from * BLOCKS_PER_MINUTE),
                        round((nonstop_from + nonstop_minutes) * BLOCKS_PER_MINUTE))
        self.rng = np.random.default_rng(seed)
        self.blocks_out = 0
        self.dropped_blocks = 0
        self._stop = threading.Event()

    def __enter__(self) -> ShowSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def stop(self) -> None:
        """End the show early."""
        self._stop.set()

    def _utterances(self) -> Iterator[np.ndarray]:
        """The speech clip at a varying gain, then 0.5-6 s of room noise; forever."""
        while True:
            gain = np.float32(self.rng.uniform(0.5, 1.2))
            for block in self.speech:
                yield block * gain
            for _ in range(int(self.rng.integers(6, 75))):
                yield (self.rng.standard_normal(BLOCK) * 0.002).astype(np.float32)

    def blocks(self) -> Iterator[np.ndarray]:
        """Every block of the show, then the end (a file-like source)."""
        speech = self._utterances()
        first, last = self.nonstop
        for i in range(self.total):
            if self._stop.is_set():
                return
            if first <= i < last:
                level = 0.02 + 0.58 * (i - first) / max(1, last - first)
                block = np.clip(self.rng.standard_normal(BLOCK) * level, -1, 1).astype(np.float32)
            else:
                block = next(speech)
            self.blocks_out += 1
            yield block


def memory_now(pipeline: Pipeline) -> MemoryReport:
    """The show's memory as its session log states it (runtime/memory.py: psutil's RSS of the main process and
    the workers, the speech worker's MLX figures); before the show starts, the main process alone."""
    if pipeline.memory is not None:
        return pipeline.memory.reading()
    return MemoryReport(process_rss({"main": os.getpid()}), None)


@dataclass
class Sample:
    """One reading of the running show."""

    wall_seconds: float
    audio_minutes: float
    rss_mb: float  # the main process and the workers together
    events_qsize: int
    brain_qsize: int  # the outbox: the brain's answers on their way out
    recorder_qsize: int
    mlx_active_mb: float = 0.0  # the speech worker's MLX figures (0: not answered yet)
    mlx_cache_mb: float = 0.0


@dataclass
class SoakResult:
    """What the show did, and what it cost."""

    minutes: float
    codec: str
    wall_seconds: float = 0.0
    blocks_in: int = 0
    frames_in: int = 0
    frames_fed: int = 0
    steps: int = 0
    resets: Counter = field(default_factory=Counter)
    reset_steps: list[tuple[int, int]] = field(default_factory=list)  # (block index, frames in the segment)
    max_segment_frames: int = 0  # the engine's hard cap, in blocks
    nonstop: tuple[int, int] = (0, 0)  # block range of the non-stop stretch
    words: int = 0
    logged_words: int = 0
    phrases: int = 0
    prompts: int = 0
    logged_prompts: int = 0
    osc: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dropped_blocks: int = 0
    stt_restarts: int = 0
    stopped: Stopped | None = None
    samples: list[Sample] = field(default_factory=list)
    queue_limits: dict[str, int] = field(default_factory=dict)
    queue_peaks: Counter = field(default_factory=Counter)  # largest qsize seen, polled every 20 ms
    log_path: str = ""
    log_bytes: int = 0

    def resets_in_nonstop(self) -> int:
        """State resets that happened inside the non-stop stretch (no pause to reset at)."""
        first, last = self.nonstop
        return sum(1 for step, _ in self.reset_steps if first < step <= last)

    def longest_segment(self) -> int:
        """The most blocks the model heard between two resets (the last segment included)."""
        last_step = self.reset_steps[-1][0] if self.reset_steps else 0
        return max([n for _, n in self.reset_steps] + [self.frames_in - last_step])

    def max_queue(self, name: str) -> int:
        """The largest size seen of one queue."""
        return max(self.queue_peaks[name], *(getattr(s, f"{name}_qsize") for s in self.samples))


def soak_config(checkpoint: Path, log_dir: Path, osc_port: int, *, reset_after: float | None = None,
                max_segment: float | None = None, memory_seconds: float = 60.0) -> Config:
    """The show's config: the checkpoint, OSC to the local peer with levels and transcript, control in."""
    stt: dict[str, Any] = {"model": str(checkpoint)}
    if reset_after is not None:
        stt["reset_after_seconds"] = reset_after
    if max_segment is not None:
        stt["max_segment_seconds"] = max_segment
    layer = {"stt": stt, "audio": {"realtime": False},
             "osc": {"targets": f"127.0.0.1:{osc_port}", "preset": "vocevibe", "send_level": True,
                     "send_transcript": True},
             "control": {"enabled": True, "port": 0},
             "session": {"log_dir": str(log_dir)}, "brain": {"model": "none"},
             "supervisor": {"memory_log_seconds": memory_seconds}}
    return load_config(overrides=[layer], include_defaults_files=False)


def run_soak(checkpoint: Path, speech_blocks: list[np.ndarray], workdir: Path, *, minutes: float,
             nonstop_from: float, nonstop_minutes: float = 10.0,
             reset_after: float | None = None, max_segment: float | None = None,
             sample_seconds: float = 5.0, record_audio: bool = True, progress: Any = None) -> SoakResult:
    """Run the whole show; return its counters, queue sizes and memory samples. The checkpoint's Mimi file
    says which codec runs (write_checkpoint's `codec`)."""
    peer = OscPeer(keep=False).start()
    result = SoakResult(minutes, "fast" if is_fast_codec(locate_stt(str(checkpoint)).mimi) else "real")
    config = soak_config(checkpoint, workdir / "log", peer.port, reset_after=reset_after, max_segment=max_segment,
                         memory_seconds=max(1.0, sample_seconds))
    source = ShowSource(speech_blocks, minutes, nonstop_from=nonstop_from, nonstop_minutes=nonstop_minutes)
    pipeline = Pipeline(config, input_spec="soak", record_audio=record_audio,
                        brain_loader=scripted_brain,
                        source_opener=lambda spec, cfg: source)

    def consume() -> None:
        while True:
            item = pipeline.events.get()
            if isinstance(item, Word):
                result.words += 1
            elif isinstance(item, SegmentReset):
                result.resets[item.reason] += 1
                result.reset_steps.append((item.step, item.segment_frames))
            elif isinstance(item, Phrase):
                result.phrases += 1
            elif isinstance(item, ImagePrompt):
                result.prompts += 1
            elif isinstance(item, Status) and item.level in ("error", "warning"):
                (result.errors if item.level == "error" else result.warnings).append(item.message)
            elif isinstance(item, PipelineStats):
                result.dropped_blocks = item.dropped_blocks
            elif isinstance(item, Stopped):
                result.stopped = item
                return

    def sample(start: float) -> None:
        recorder = getattr(pipeline.log, "_recorder", None)
        memory = memory_now(pipeline)
        mlx = memory.mlx
        result.samples.append(Sample(time.monotonic() - start, source.blocks_out / BLOCKS_PER_MINUTE,
                                     memory.total_rss / MB, pipeline.events.qsize(), pipeline.controls.outbox.qsize(),
                                     recorder._queue.qsize() if recorder is not None else 0,
                                     mlx.active / MB if mlx else 0.0, mlx.cache / MB if mlx else 0.0))
        if progress is not None:
            progress(result.samples[-1])

    def watch_queues() -> None:
        while result.stopped is None and consumer.is_alive():
            recorder = getattr(pipeline.log, "_recorder", None)
            for name, q in (("events", pipeline.events), ("brain", pipeline.controls.outbox),
                            ("recorder", recorder._queue if recorder is not None else None)):
                if q is not None and q.qsize() > result.queue_peaks[name]:
                    result.queue_peaks[name] = q.qsize()
            time.sleep(0.02)

    consumer = threading.Thread(target=consume, name="soak-consumer")
    consumer.start()
    watcher = threading.Thread(target=watch_queues, name="soak-queue-watch", daemon=True)
    watcher.start()
    start = time.monotonic()
    sample(start)
    try:
        pipeline.start()
        result.log_path = str(pipeline.log_path)
        recorder = getattr(pipeline.log, "_recorder", None)
        result.queue_limits = {"events": pipeline.events.maxsize, "brain": OUTBOX_SIZE,
                               "recorder": recorder._queue.maxsize if recorder is not None else 0}
        while not pipeline.wait(sample_seconds):
            sample(start)
        sample(start)
    finally:
        pipeline.stop()
        consumer.join(30)
        peer.close()
    result.wall_seconds = time.monotonic() - start
    sample(start)
    counters = pipeline.stt.counters
    result.frames_in, result.frames_fed, result.steps = counters.frames_in, counters.frames_fed, counters.steps
    result.max_segment_frames = counters.max_segment
    result.blocks_in = source.blocks_out
    result.nonstop = source.nonstop
    result.stt_restarts = pipeline.stats().stt_restarts
    result.osc = peer.counts
    log_path = Path(result.log_path)
    result.log_bytes = log_path.stat().st_size
    with log_path.open(encoding="utf-8") as fh:
        for line in fh:
            kind = json.loads(line)["type"]
            result.logged_words += kind == "word"
            result.logged_prompts += kind == "image_prompt"
    return result
