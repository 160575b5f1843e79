"""`voicevibe doctor --speed`: can this machine keep up with a show? The check a performer runs once before it.

It loads the configured speech model in its worker process (the show's own `Engines`), feeds it about
20 s of speech as fast as it takes it, and times every step in the worker; then it sends a few phrases
through the brain's worker and times each prompt. It prints the speech engine's real-time factor and its
per-step p50/p95 against the 80 ms a block of audio lasts, the brain's median against its time budget,
and a verdict: exit 1 when this machine cannot keep up. The two are timed one after the other; in a show
they share the machine, hence the warning when the speech engine keeps up without headroom (TIGHT_RTF).

The speech comes from the system's synthesizer (`say` on macOS, espeak-ng elsewhere); without one a
generated signal stands in, and the output says so: a step costs the same whatever is said.
"""

from __future__ import annotations

import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voicevibe.audio import AudioError, FileSource
from voicevibe.brain.stage import OVERDUE_GRACE_SECONDS, Answer
from voicevibe.config import BLOCK, FRAME_SECONDS, SAMPLE_RATE, Config
from voicevibe.events import ImagePrompt, Phrase, Status
from voicevibe.runtime.engines import BRAIN_LOADER, STT_LOADER, Engines
from voicevibe.workers.stage import Loader

EXIT_KEEPS_UP, EXIT_TOO_SLOW = 0, 1
SAMPLE_SECONDS = 20.0  # about this much speech goes through the speech engine
WARMUP_STEPS = 5  # the first steps (lazy allocations, caches) are not counted
STEP_BUDGET_MS = FRAME_SECONDS * 1000  # 80 ms: a step must take less than the audio it eats
TIGHT_RTF = 0.8  # above this the engine keeps up without headroom (another app, a warm Mac)
ANSWER_SLACK_SECONDS = 5.0  # past the budget and the fallback's grace, a phrase with no prompt at all is given up
LOAD_TIMEOUT_SECONDS = 900.0  # a first load can compile and page in gigabytes
SAMPLE_TEXT = ("Good evening. Tonight the stage becomes a harbour at night, with a red boat drifting past the "
               "lighthouse. Le soleil se couche sur la mer et les oiseaux chantent. A giant whale swims through "
               "a forest of glowing trees, and the city wakes up in neon rain.")
PHRASES = ("a red boat drifting past the lighthouse at night", "le soleil se couche sur la mer",
           "a giant whale swims through a forest of glowing trees")
NO_SYNTHESIZER = ("no speech synthesizer found ({wanted}): timing with a generated signal instead (a step costs "
                  "the same whatever is said); {fix}")

Which = Callable[[str], str | None]


@dataclass(frozen=True)
class SpeechSpeed:
    """The speech engine's step times (ms, warm-up excluded) over `audio_seconds` of audio."""

    steps_ms: tuple[float, ...]
    audio_seconds: float
    load_seconds: float

    @property
    def rtf(self) -> float:
        """Compute per block against the 80 ms of audio it holds (above 1: slower than real time)."""
        return statistics.fmean(self.steps_ms) / STEP_BUDGET_MS if self.steps_ms else float("inf")

    def percentile(self, q: float) -> float:
        """The q-th percentile of the step times, in ms."""
        return float(np.percentile(self.steps_ms, q)) if self.steps_ms else float("inf")


@dataclass(frozen=True)
class BrainSpeed:
    """The brain's answer times (ms, from the phrase sent to the prompt back) and how many were fallbacks."""

    latencies_ms: tuple[float, ...]
    budget_ms: float
    fallbacks: int
    model: str
    notes: tuple[str, ...] = ()  # what the brain said while loading (a missing model and what stands in)

    @property
    def median(self) -> float:
        """The median answer time, in ms."""
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("inf")


@dataclass(frozen=True)
class Verdict:
    """Whether this machine keeps up, and why (one line per finding)."""

    keeps_up: bool
    reasons: tuple[str, ...]


def verdict(speech: SpeechSpeed, brain: BrainSpeed | None) -> Verdict:
    """Keeps up when the speech engine runs faster than real time and the brain's median is within its budget."""
    reasons = []
    keeps_up = True
    if speech.rtf >= 1.0:
        keeps_up = False
        reasons.append(f"the speech engine needs {speech.rtf * STEP_BUDGET_MS:.0f} ms per {STEP_BUDGET_MS:.0f} ms "
                       "block: it falls behind and audio would be dropped; use a smaller or quantized speech model "
                       "(stt.model, stt.dtype) or a faster Mac")
    elif speech.rtf >= TIGHT_RTF:
        reasons.append(f"the speech engine keeps up with little headroom (real-time factor {speech.rtf:.2f}): "
                       "quit other apps during the show")
    if speech.rtf < 1.0 and speech.percentile(95) > STEP_BUDGET_MS:
        reasons.append(f"one step in twenty takes over {STEP_BUDGET_MS:.0f} ms: audio.queue_seconds absorbs it")
    if brain is not None and brain.median > brain.budget_ms:
        keeps_up = False
        reasons.append(f"the brain's median answer ({brain.median:.0f} ms) is over its budget "
                       f"({brain.budget_ms:.0f} ms, brain.time_budget_seconds): most prompts would be the "
                       "fallback's; use a smaller brain model (brain.model) or more GPU layers")
    return Verdict(keeps_up, tuple(reasons))


# ---- the speech sample --------------------------------------------------------------------------


def synthesizer(platform: str, which: Which = shutil.which) -> tuple[str, str]:
    """(the synthesizer's path, or "" when missing; how to install it) for this platform."""
    if platform == "darwin":
        return which("say") or "", "`say` comes with macOS: check that /usr/bin is on PATH"
    return which("espeak-ng") or "", "install espeak-ng (apt install espeak-ng) for real speech"


def speak(tool: str, text: str, out: Path) -> Path:
    """Speak `text` into an audio file with `say` or espeak-ng; the file's path."""
    say = Path(tool).name == "say"
    path = out.with_suffix(".aiff" if say else ".wav")
    subprocess.run([tool, "-o" if say else "-w", str(path), text], check=True, capture_output=True, timeout=120)
    return path


def generated_blocks(seconds: float, seed: int = 0) -> list[np.ndarray]:
    """A speech-like stand-in: 3 s bursts of modulated noise with pauses, 24 kHz blocks."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = np.clip(np.sin(2 * np.pi * t * 4.0), 0, None) * ((t % 4.0) < 3.0)  # syllables, then a pause
    audio = (rng.standard_normal(t.size) * 0.1 * envelope).astype(np.float32)
    return [audio[i:i + BLOCK] for i in range(0, audio.size - BLOCK + 1, BLOCK)]


def sample_blocks(platform: str, folder: Path, *, which: Which = shutil.which) -> tuple[list[np.ndarray], str]:
    """About SAMPLE_SECONDS of 24 kHz blocks (the synthesized speech repeated) and a line saying how they
    were made."""
    count = round(SAMPLE_SECONDS / FRAME_SECONDS)
    tool, fix = synthesizer(platform, which)
    if not tool:
        wanted = "say" if platform == "darwin" else "espeak-ng"
        return generated_blocks(SAMPLE_SECONDS), NO_SYNTHESIZER.format(wanted=wanted, fix=fix)
    try:
        blocks = list(FileSource(speak(tool, SAMPLE_TEXT, folder / "sample"), realtime=False).blocks())
    except (OSError, subprocess.SubprocessError, AudioError) as e:
        return generated_blocks(SAMPLE_SECONDS), f"{Path(tool).name} failed ({e}): timing with a generated signal"
    if not blocks:
        return generated_blocks(SAMPLE_SECONDS), f"{Path(tool).name} made no audio: timing with a generated signal"
    spoken = len(blocks) * FRAME_SECONDS
    blocks = [blocks[i % len(blocks)] for i in range(count)]
    return blocks, f"{count * FRAME_SECONDS:.0f} s of speech made with {Path(tool).name} ({spoken:.1f} s, repeated)"


# ---- the measurements ---------------------------------------------------------------------------


def measure_speech(engines: Engines, config: Config, blocks: list[np.ndarray], load_seconds: float) -> SpeechSpeed:
    """Feed every block to the speech worker as fast as it takes them; its step times, warm-up excluded."""
    stt = engines.stt
    steps: list[float] = []
    stt.on_step = steps.append
    try:
        stt.begin(config.stt, lambda events: None, queue_seconds=config.audio.queue_seconds)
        for block in blocks:
            stt.feed(block, wait=True)
        stt.finish()
    finally:
        stt.on_step = None
    measured = steps[WARMUP_STEPS:] if len(steps) > WARMUP_STEPS else steps
    return SpeechSpeed(tuple(s * 1000 for s in measured), len(blocks) * FRAME_SECONDS, load_seconds)


def measure_brain(engines: Engines, config: Config, answers: queue.Queue[Answer],
                  phrases: Sequence[str] = PHRASES) -> BrainSpeed:
    """Send each phrase to the brain's worker, one at a time; the time until its prompt came back. `answers` is
    the brain's sink, attached before it loaded: what it said while loading becomes the notes."""
    notes = []
    while not answers.empty():
        said = answers.get_nowait()
        if isinstance(said, Status):
            notes.append(said.message)
    budget = config.brain.time_budget_seconds
    latencies, fallbacks, model = [], 0, ""
    for text in phrases:
        sent = time.monotonic()
        engines.brain.put(Phrase(text, 0.0, 0.0, "typed", closed_at=sent))
        prompt = _next_prompt(answers, sent + budget + OVERDUE_GRACE_SECONDS + ANSWER_SLACK_SECONDS)
        latencies.append((time.monotonic() - sent) * 1000)  # no prompt at all: as slow as we waited
        fallbacks += prompt is None or prompt.source == "fallback"
        model = model or (prompt.model if prompt is not None else "")
    return BrainSpeed(tuple(latencies), budget * 1000, fallbacks, model or config.brain.model, tuple(notes))


def _next_prompt(answers: queue.Queue[Answer], deadline: float) -> ImagePrompt | None:
    """The next prompt among the brain's answers (statuses pass by), or None at the deadline."""
    while (left := deadline - time.monotonic()) > 0:
        try:
            answer = answers.get(timeout=left)
        except queue.Empty:
            return None
        if isinstance(answer, ImagePrompt):
            return answer
    return None


# ---- the report ---------------------------------------------------------------------------------


def render(speech: SpeechSpeed, brain: BrainSpeed | None, result: Verdict, *, brain_note: str = "") -> str:
    """The speed lines and the verdict."""
    lines = [f"  speech engine  real-time factor {speech.rtf:.2f} ({speech.rtf * STEP_BUDGET_MS:.1f} ms of compute "
             f"per {STEP_BUDGET_MS:.0f} ms of audio; {speech.audio_seconds:.0f} s of audio, loaded in "
             f"{speech.load_seconds:.1f} s)",
             f"  speech step    p50 {speech.percentile(50):.1f} ms, p95 {speech.percentile(95):.1f} ms, max "
             f"{max(speech.steps_ms, default=float('inf')):.1f} ms over {len(speech.steps_ms)} steps "
             f"(budget {STEP_BUDGET_MS:.0f} ms per step)"]
    if brain is not None:
        lines.append(f"  brain          median {brain.median:.0f} ms over {len(brain.latencies_ms)} phrases "
                     f"(budget {brain.budget_ms:.0f} ms), {brain.fallbacks} fallback prompt(s); {brain.model}")
        lines += [f"  brain said     {note}" for note in brain.notes]
    else:
        lines.append(f"  brain          not timed: {brain_note}")
    lines += [f"  note: {reason}" for reason in result.reasons]
    lines.append("Verdict: this machine keeps up." if result.keeps_up else
                 "Verdict: this machine cannot keep up (see above).")
    return "\n".join(lines)


def main(config: Config, *, stt_loader: Loader = STT_LOADER, brain_loader: Loader = BRAIN_LOADER,
         platform: str = sys.platform, which: Which = shutil.which) -> int:
    """Time the speech engine and the brain on this machine; EXIT_KEEPS_UP or EXIT_TOO_SLOW."""
    print(f"VoiceVibe doctor --speed: can this machine keep up? (speech model {config.stt.model}, {config.stt.dtype})",
          flush=True)
    engines = Engines(config, stt_loader=stt_loader, brain_loader=brain_loader)
    answers: queue.Queue[Answer] = queue.Queue()
    engines.brain.attach(answers.put)
    stop = threading.Event()
    timer = threading.Timer(LOAD_TIMEOUT_SECONDS, stop.set)
    timer.start()
    try:
        with tempfile.TemporaryDirectory(prefix="voicevibe-speed-") as folder:
            blocks, made = sample_blocks(platform, Path(folder), which=which)
        print(f"  sample         {made}", flush=True)
        started = time.monotonic()
        engines.start()
        if not engines.stt.wait_ready(stop):
            why = engines.stt.worker.failure or f"not loaded within {LOAD_TIMEOUT_SECONDS:.0f} s"
            print(f"  speech engine  cannot load: {why}\nVerdict: nothing to time; fix the speech model first "
                  "(`voicevibe doctor`).")
            return EXIT_TOO_SLOW
        speech = measure_speech(engines, config, blocks, time.monotonic() - started)
        brain, note = None, ""
        if not engines.brain.enabled:
            note = engines.brain.absent_reason()
        elif not engines.brain.wait_ready(stop):
            note = engines.brain.absent_reason() + " (fallback prompts go out)"
        else:
            brain = measure_brain(engines, config, answers)
        result = verdict(speech, brain)
        print(render(speech, brain, result, brain_note=note))
        return EXIT_KEEPS_UP if result.keeps_up else EXIT_TOO_SLOW
    finally:
        timer.cancel()
        engines.close()
