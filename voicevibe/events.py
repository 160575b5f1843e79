"""The app's vocabulary: frozen dataclasses, nothing else.

Two kinds, each a union at the end of its part:
- `Event`: what the show produces (words, phrases, prompts, levels, status...), read by front ends
  and written to the session log.
- `Command`: what an operator asks for (one meaning everywhere: window, keys, terminal, OSC
  control in, MIDI), carried out by `runtime.controls.Controls.apply`.
What crosses the pipe to and from a model's worker process is in `workers/messages.py`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Literal

# ---- the show's events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Word:
    """One text token of the transcript: a sentencepiece piece, a leading space opens a word."""

    text: str  # the piece with "▁" turned into a space, as Kyutai's scripts print it
    token: int  # the text token id
    step: int  # 80 ms frame index of the stream when the token came out
    t: float  # seconds of audio the word belongs to (emission time minus the model's delay)

    @property
    def starts_word(self) -> bool:
        """True when this piece begins a new word rather than continuing the previous one."""
        return self.text.startswith(" ")


@dataclass(frozen=True)
class PhraseEnd:
    """The speaker paused: the semantic-VAD head (or the end of input) closed a phrase."""

    step: int
    t: float
    pause_prob: float  # smoothed pause probability; 1.0 when the input ended
    reason: Literal["vad", "end"] = "vad"


ResetReason = Literal["pause", "quiet", "limit"]  # a phrase's pause, a quiet moment, the segment cap


@dataclass(frozen=True)
class SegmentReset:
    """The STT state (LM cache and Mimi) was reset between two frames, without losing any."""

    step: int  # first frame of the new segment
    segment_frames: int  # real audio frames the closed segment consumed
    reason: ResetReason


@dataclass(frozen=True)
class Status:
    """A human-readable state change or problem for the front end and the log."""

    stage: str
    message: str
    level: Literal["info", "warning", "error"] = "info"


@dataclass(frozen=True)
class Phrase:
    """A closed phrase of the transcript, ready for the brain."""

    text: str
    t_start: float  # seconds of audio of its first word
    t_end: float
    reason: Literal["vad", "end", "punctuation", "length", "typed", "cue"] = "vad"
    closed_at: float = 0.0  # time.monotonic() when the phrase closed (0: unknown)


@dataclass(frozen=True)
class ImagePrompt:
    """An English image prompt for the renderer, made from a phrase."""

    text: str
    phrase: str  # what was said
    style: str  # the style preset
    mood: str  # one or two words from the model; "" from the fallback
    source: Literal["model", "fallback", "cue"]
    reason: str = ""  # why the fallback made it (no model, timeout, bad output...); "" from the model
    latency_ms: float = 0.0  # from the brain taking the phrase to the prompt
    model: str = ""  # the model that was asked, "" when there is none
    phrase_closed_at: float = 0.0  # time.monotonic() stamps: the phrase closed (speech end seen by STT),
    brain_start: float = 0.0  # the brain took it,
    brain_end: float = 0.0  # the prompt was ready


@dataclass(frozen=True)
class Summary:
    """The slow brain's view of the session so far, with one richer image prompt for it."""

    text: str  # a sentence or two about what the session has been about
    image_prompt: str  # an English SDXL-Turbo prompt for the whole session so far
    source: Literal["model", "fallback"]
    reason: str = ""  # why the fallback made it; "" from the model
    latency_ms: float = 0.0
    model: str = ""


@dataclass(frozen=True)
class Levels:
    """Meters for one block: raw input, processed output, gain now, gate and weak-signal flags."""

    peak_in: float
    rms_in: float
    peak_out: float
    rms_out: float
    gain: float  # pre-gain x AGC gain at the block's last sample (linear; gate and limiter apart)
    gate_open: bool  # the gate lets sound through (always true when the gate is off)
    weak_signal: bool  # raw input peak under weak_peak for weak_seconds


@dataclass(frozen=True)
class TargetStatus:
    """One OSC receiver's counters, for the front end and the log."""

    target: str  # "host:port"
    sent: int  # datagrams handed to the network
    errors: int  # datagrams that could not be sent
    last_send: float | None  # time.monotonic() of the last datagram sent
    last_error: str  # the last error, "" when there was none
    failing: bool = False  # an error in the last FAILING_SECONDS (a closed port fails every other send)


WorkerStateName = Literal["starting", "loading", "ready", "restarting", "failed", "stopped"]


@dataclass(frozen=True)
class WorkerState:
    """Where a model's worker process is: for the status bar (with load progress) and the log."""

    stage: str  # "stt" or "brain"
    state: WorkerStateName
    message: str  # what the operator reads, e.g. "speech engine stopped (signal 9): restarting in 1 s"
    progress: float | None = None  # 0..1 while loading, when known
    pid: int | None = None


@dataclass(frozen=True)
class PipelineStats:
    """Health figures for the status bar, about once a second."""

    stt_rtf: float  # STT compute per block / 80 ms (above 1: slower than real time)
    dropped_blocks: int  # input blocks dropped: backpressure, or the speech engine down
    brain_latency_ms: float  # the last prompt's brain time
    log_path: str
    stt_restarts: int = 0  # speech-engine restarts (step errors and process restarts)


@dataclass(frozen=True)
class CueFired:
    """A cue of the show went out (a fixed prompt) or went to the brain (a phrase cue)."""

    number: int  # 1-based, as on its button
    name: str
    text: str  # the prompt sent, or the phrase handed to the brain
    via: str  # what fired it: "key", "button", "osc", "midi", "voice", "terminal"...
    seed: int | None = None  # the seed sent with it (None: the preset carries no seed)
    sent: bool = False  # a datagram left (false: panic, freeze, no target, or a phrase cue)
    heard: str = ""  # the trigger words heard, when the voice fired it
    phrase: bool = False  # a phrase cue: `text` went to the brain, its prompt follows


@dataclass(frozen=True)
class PhraseDropped:
    """A spoken phrase kept from the brain by the phrase hygiene (a filler, or too short)."""

    text: str
    why: str


@dataclass(frozen=True)
class Stopped:
    """The pipeline has finished (end of input, error or stop); nothing follows."""

    error: str | None = None


@dataclass(frozen=True)
class DownloadProgress:
    """A first-launch model download (firstrun.py): bytes so far of the whole download."""

    file: str  # the file being fetched now
    done: int
    total: int | None  # None while a size is unknown


@dataclass(frozen=True)
class DownloadDone:
    """The first-launch download ended; `error` is None when every file arrived."""

    error: str | None
    speech: bool  # the speech model's files all arrived: its worker loads again
    brain: bool  # the brain's GGUF arrived


SpeechEvent = Word | PhraseEnd | SegmentReset  # what the speech engine emits
Event = (Word | PhraseEnd | SegmentReset | Status | Phrase | ImagePrompt | Summary | Levels | TargetStatus
         | WorkerState | PipelineStats | CueFired | PhraseDropped | Stopped | DownloadProgress | DownloadDone)

EVENT_TYPES: dict[type, str] = {Word: "word", PhraseEnd: "phrase_end", SegmentReset: "reset", Status: "status",
                                Phrase: "phrase", ImagePrompt: "image_prompt", Summary: "summary",
                                WorkerState: "worker", CueFired: "cue", PhraseDropped: "phrase_dropped"}


def to_json_dict(event: Any) -> dict[str, Any]:  # Any: an event or command dataclass
    """The event as a flat JSON-ready dict with a `type` field first."""
    return {"type": EVENT_TYPES.get(type(event)) or snake_name(type(event)), **dataclasses.asdict(event)}


def snake_name(kind: type) -> str:
    """`SetGain` -> `set_gain`: how a type is named in logs."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", kind.__name__).lower()


def join_words(words: list[Word]) -> str:
    """The transcript text of a run of word events."""
    return "".join(w.text for w in words).strip()


# ---- the operator's commands ---------------------------------------------------------------------


@dataclass(frozen=True)
class SetGain:
    """Input pre-gain in dB (dsp.gain_db)."""

    db: float


@dataclass(frozen=True)
class SetGate:
    """Noise-gate opening threshold, linear peak (dsp.gate_threshold)."""

    threshold: float


@dataclass(frozen=True)
class SetAgc:
    """Automatic gain control on or off."""

    on: bool


@dataclass(frozen=True)
class Freeze:
    """Hold the screen (nothing new sent), or release it (the newest prompt goes out)."""

    on: bool


@dataclass(frozen=True)
class Panic:
    """Send the safe prompt and a panic flag now and nothing else until released; or release."""

    on: bool


@dataclass(frozen=True)
class PauseBrain:
    """The brain stops making prompts (memory kept), or resumes."""

    on: bool


@dataclass(frozen=True)
class SetStyle:
    """Switch the style preset."""

    name: str


@dataclass(frozen=True)
class SetVibe:
    """The global vibe added to every prompt ("" clears it)."""

    text: str


@dataclass(frozen=True)
class ResetMemory:
    """Clear the brain's history, previous prompt, vibe and session summary."""


@dataclass(frozen=True)
class SetHistory:
    """Seconds of recent transcript the brain sees."""

    seconds: float


@dataclass(frozen=True)
class SetRate:
    """0: a prompt for every phrase; else at most one prompt every this many seconds."""

    seconds: float


@dataclass(frozen=True)
class MakeSummary:
    """Ask the slow brain for a summary now."""


@dataclass(frozen=True)
class SendPrompt:
    """A prompt the operator typed (or clicked in the history), straight to the screen."""

    text: str


@dataclass(frozen=True)
class SayText:
    """A typed phrase for the brain, as if it had been spoken."""

    text: str


@dataclass(frozen=True)
class FireCue:
    """Fire a cue of the loaded show: its 1-based number (as on its button) or its name."""

    cue: int | str
    via: str = ""  # the surface, for the log: "key", "button", "osc", "midi", "voice"...
    heard: str = ""  # the trigger words, when the voice fired it


@dataclass(frozen=True)
class NextCue:
    """Fire the next cue of the show (the highlighted one)."""

    via: str = ""


@dataclass(frozen=True)
class PreviousCue:
    """Fire the cue before the last one fired."""

    via: str = ""


@dataclass(frozen=True)
class SeedLock:
    """Keep the renderer's seed across prompts (on), or roll a new one with each prompt (off)."""

    on: bool


@dataclass(frozen=True)
class NewSeed:
    """Roll a new seed now; it goes with the next prompt."""


@dataclass(frozen=True)
class SetTransition:
    """Seconds a new prompt takes to replace the previous one on screen (0: a cut)."""

    seconds: float


ShowCommand = FireCue | NextCue | PreviousCue | SeedLock | NewSeed | SetTransition
SHOW_COMMANDS = (FireCue, NextCue, PreviousCue, SeedLock, NewSeed, SetTransition)
BrainCommand = PauseBrain | SetStyle | SetVibe | ResetMemory | SetHistory | SetRate | MakeSummary
Command = SetGain | SetGate | SetAgc | Freeze | Panic | SendPrompt | SayText | BrainCommand | ShowCommand
BRAIN_COMMANDS = (PauseBrain, SetStyle, SetVibe, ResetMemory, SetHistory, SetRate, MakeSummary)
