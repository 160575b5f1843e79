"""Typed events the stages exchange over queues: frozen dataclasses, nothing else."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal


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


@dataclass(frozen=True)
class SegmentReset:
    """The STT state (LM cache and Mimi) was reset between two frames, without losing any."""

    step: int  # first frame of the new segment
    segment_frames: int  # real audio frames the closed segment consumed
    reason: Literal["pause", "quiet", "limit"]


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
    reason: Literal["vad", "end", "punctuation", "length", "typed"] = "vad"
    closed_at: float = 0.0  # time.monotonic() when the phrase closed (0: unknown)


@dataclass(frozen=True)
class ImagePrompt:
    """An English image prompt for the renderer, made from a phrase."""

    text: str
    phrase: str  # what was said
    style: str  # the style preset
    mood: str  # one or two words from the model; "" from the fallback
    source: Literal["model", "fallback"]
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


Event = Word | PhraseEnd | SegmentReset | Status | Phrase | ImagePrompt | Summary

EVENT_TYPES: dict[type, str] = {Word: "word", PhraseEnd: "phrase_end", SegmentReset: "reset", Status: "status",
                                Phrase: "phrase", ImagePrompt: "image_prompt", Summary: "summary"}


def to_json_dict(event: Event) -> dict[str, Any]:
    """The event as a flat JSON-ready dict with a `type` field first."""
    return {"type": EVENT_TYPES[type(event)], **dataclasses.asdict(event)}


def join_words(words: list[Word]) -> str:
    """The transcript text of a run of word events."""
    return "".join(w.text for w in words).strip()
