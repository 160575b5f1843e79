"""What the brain asks a language model, and the interface every model (llama.cpp, a server, a test's) gives.

`PromptRequest`/`SummaryRequest` are everything a model is told; `completion_text`, `chat_messages`
and `summary_text` render them for a base model (few-shot text) or an instruct model (one chat
message). The fixed part of every prompt comes first so that llama.cpp keeps it in its cache; the
varying part (the phrase) comes last. A model raises `Abandoned` when told to stop, and
`BackendUnavailable` when its server cannot answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from voicevibe.brain.assets import Example, Style

REPEAT_PENALTY = 1.15  # greedy decoding of a small model loops ("a snow, a snow, ..."); this curbs it


SUMMARY_MAX_TOKENS = 160


SUMMARY_HEAD = '{"summary": "'  # the summary answer opened up to its first field


INSTRUCTIONS = ("Turn what a performer says on stage (English or French) into an image prompt for a "
                "text-to-image model: style, subject, action or place, light and colour, in English only, "
                "concrete and visual, under 25 words, no negations; and the mood in one word.")


SUMMARY_INSTRUCTIONS = ("A performer speaks on stage, in English or French. Keep a running summary in English, "
                        "one or two sentences, of what the whole show is about, and one rich image prompt in "
                        "English for the whole show so far.")


SUMMARY_EXAMPLES = (
    ("", "la mer est calme ce soir / un bateau part vers l'île / the storm is coming",
     "A small boat leaves a calm evening sea for an island while a storm gathers.",
     "a small boat sailing across a calm sea toward a distant island, storm clouds gathering, dusk light"),
    ("A small boat leaves a calm evening sea for an island while a storm gathers.",
     "the children sing in the village / mon père allume le feu",
     "A boat reaches an island village where children sing and a father lights a fire against the storm.",
     "an island village at night, children singing around a fire, storm clouds over the sea, warm orange glow"),
)


class Abandoned(RuntimeError):
    """Generation was stopped: over the time budget, or a newer phrase is waiting."""


@dataclass(frozen=True)
class PromptRequest:
    """Everything the model is told for one phrase."""

    phrase: str
    style: Style
    history: tuple[str, ...] = ()  # earlier phrases in the history window, oldest first
    previous_prompt: str = ""
    vibe: str = ""
    gloss: str = ""  # the phrase's words in English when it is French (Assets.gloss): a 270M reads French badly


@dataclass(frozen=True)
class SummaryRequest:
    """What the slow brain is told: its last summary and what was said since (both bounded)."""

    previous_summary: str
    new_speech: str
    style: Style
    vibe: str = ""
    gloss: str = ""  # the new speech's French words in English (Assets.gloss), as for a phrase


class PromptModel(Protocol):
    """What the brain needs from a language model: raw JSON text for a request."""

    @property
    def name(self) -> str:
        """The model's name, as ImagePrompt.model reports it."""

    def generate(self, request: PromptRequest, should_stop: Callable[[], str]) -> str:
        """The model's raw output; raises Abandoned when `should_stop()` returns a reason."""

    def summarize(self, request: SummaryRequest, should_stop: Callable[[], str]) -> str:
        """Raw JSON `{"summary": ..., "prompt": ...}`; raises Abandoned like `generate`."""


class BackendUnavailable(RuntimeError):
    """The model's backend cannot answer now (a server down, erroring or too slow): the message is the reason
    the fallback prompt gives, as is."""


@runtime_checkable
class Reporting(Protocol):
    """A model with a backend the operator should see (a server): `attach` gives it the brain's `post`."""

    def attach(self, post: Callable[[object], None]) -> None:
        """Post Status events about the backend from now on (from the brain's thread)."""


def _answer(style: Style, scene: str, mood: str) -> str:
    return json.dumps({"style": style.name, "prompt": f"{style.medium}, {scene}", "mood": mood})


def completion_head(request: PromptRequest) -> str:
    """Where the model starts writing: the JSON opened up to the preset's medium and its comma.

    No trailing space: Gemma's tokens carry their leading space, and a prompt ending in a bare
    space pushed the 270M toward odd continuations ("2018", "1000-year-old").
    """
    return f'{{"style": "{request.style.name}", "prompt": "{request.style.medium},'


def said(speech: str, gloss: str) -> str:
    """What was said as the model reads it: a French phrase followed by its words in English."""
    return f"{speech}\nEnglish: {gloss}" if gloss else speech


def completion_text(request: PromptRequest, examples: Sequence[Example]) -> str:
    """Few-shot text for a base model; the fixed part comes first so llama.cpp reuses its cache."""
    shots = "".join(f"Speech: {said(e.speech, e.gloss)}\nJSON: {_answer(request.style, e.scene, e.mood)}\n\n"
                    for e in examples)
    return f"{INSTRUCTIONS}\n\n{shots}Speech: {said(request.phrase, request.gloss)}\nJSON: {completion_head(request)}"


def chat_messages(request: PromptRequest, examples: Sequence[Example]) -> list[dict[str, str]]:
    """One user message (Gemma's template drops system messages) with examples and context."""
    shots = "\n".join(f'"{e.speech}" -> {_answer(request.style, e.scene, e.mood)}' for e in examples)
    context = []
    if request.history:
        context.append("Said just before: " + " / ".join(request.history))
    if request.previous_prompt:
        context.append(f"Current image: {request.previous_prompt} (keep continuity unless the mood changes)")
    if request.vibe:
        context.append(f"Overall vibe: {request.vibe}")
    text = (f"{INSTRUCTIONS} Answer with JSON only.\n\nExamples:\n{shots}\n\n" + "\n".join(context)
            + f'\n\nThe performer says: "{request.phrase}"')
    return [{"role": "user", "content": text}]


def summary_text(request: SummaryRequest, *, open_answer: bool = True) -> str:
    """Few-shot text for the slow brain; the examples first, the session's own text last."""
    def block(previous: str, speech: str, gloss: str = "") -> str:
        return f"Summary so far: {previous or '(nothing yet)'}\nNew speech: {said(speech, gloss)}\nJSON: "

    shots = "".join(block(prev, speech) + json.dumps({"summary": summary, "prompt": f"{request.style.medium}, {scene}"})
                    + "\n\n" for prev, speech, summary, scene in SUMMARY_EXAMPLES)
    vibe = f" (overall vibe: {request.vibe})" if request.vibe else ""
    return (f"{SUMMARY_INSTRUCTIONS}{vibe}\n\n{shots}"
            + block(request.previous_summary, request.new_speech, request.gloss)
            + (SUMMARY_HEAD if open_answer else ""))


@dataclass(frozen=True)
class LoadedModel:
    """What a loader gives the worker: a model (or None) and a note for the operator."""

    model: PromptModel | None
    note: str = ""
