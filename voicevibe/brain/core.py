"""The prompt brain: one phrase in, one English image prompt for SDXL-Turbo out.

`Brain` answers from the language model when it answers well and in time, else from the
fallback builder (the event says which, and why); `summarize` is the slow brain. Its settings
(style, vibe, history, rate...) change in one place, `configure`, with `configured` giving the
settings after an operator's command. The brain's worker thread and process are in
brain/worker.py, its main-process side (and the fallback that always answers) in brain/stage.py.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from voicevibe.brain.assets import Assets, normalize, words_of
from voicevibe.brain.fallback import (
    CLIP_USABLE_TOKENS,
    clip_token_estimate,
    english_words,
    fallback_prompt,
    finish_prompt,
    fit_clip,
    repair_french,
    restore_said,
)
from voicevibe.brain.prompting import (
    SUMMARY_EXAMPLES,
    Abandoned,
    BackendUnavailable,
    PromptModel,
    PromptRequest,
    SummaryRequest,
)
from voicevibe.brain.schema import parse_answer, parse_summary
from voicevibe.brain.summary import SessionDigest, fallback_summary
from voicevibe.config import BrainConfig
from voicevibe.events import (
    BrainCommand,
    ImagePrompt,
    Phrase,
    ResetMemory,
    SetHistory,
    SetRate,
    SetStyle,
    SetVibe,
    Summary,
)

log = logging.getLogger(__name__)

MERGED_CHARS = 400  # phrases merged while the brain was busy keep their last 400 characters

COPIED_SHARE = 0.6  # a summary sharing this share of its words with a few-shot example copied it
FRENCH_SHARE = 4  # a prompt with more than 1 French word in 4 echoes the phrase rather than translating it
DISTINCT_SHARE = 0.5  # fewer distinct words than this share: a small model stuck in a loop
HISTORY_KEPT = 200  # phrases remembered; the history window (seconds) picks from these
SUMMARY_BUDGET_SECONDS = 30.0  # a summary is never urgent, and any phrase interrupts it
SUPERSEDED = "superseded"
# What llama.cpp (a C library behind ctypes) raises when a decode fails: the phrase gets a fallback prompt.
MODEL_ERRORS = (RuntimeError, OSError, MemoryError)
TIMEOUT = "timeout"
CLOSINGS_KEPT = 20  # the variety rule looks at the closing phrases of the last 20 model prompts...
CLOSING_SHARE = 0.25  # ...and lets one phrase close at most a quarter of them (the preset's light aside)


def merge(older: Phrase, newer: Phrase) -> Phrase:
    """Two phrases as one: the newer one's end and close time, the last MERGED_CHARS characters."""
    return Phrase(f"{older.text} {newer.text}"[-MERGED_CHARS:], older.t_start, newer.t_end, newer.reason,
                  newer.closed_at)


def configured(config: BrainConfig, command: BrainCommand) -> BrainConfig:
    """The brain's settings after an operator's command (ConfigError for a value out of range)."""
    if isinstance(command, SetStyle):
        return dataclasses.replace(config, style=command.name)
    if isinstance(command, SetVibe):
        return dataclasses.replace(config, vibe=command.text)
    if isinstance(command, SetHistory):
        return dataclasses.replace(config, history_seconds=float(command.seconds))
    if isinstance(command, SetRate):
        return dataclasses.replace(config, prompt_interval_seconds=float(command.seconds))
    if isinstance(command, ResetMemory):
        return dataclasses.replace(config, vibe="")
    return config


class Brain:
    """Phrase in, ImagePrompt out; keeps the history, the previous prompt, the style and the vibe."""

    def __init__(self, model: PromptModel | None, config: BrainConfig, assets: Assets,
                 *, absent_reason: str = "no model") -> None:
        self.model, self.config, self.assets = model, config, assets
        self.absent_reason = absent_reason
        self.style = assets.style(config.style)
        self.vibe = config.vibe
        self.history: deque[Phrase] = deque(maxlen=HISTORY_KEPT)
        self.digest = SessionDigest()  # the slow brain's memory of the whole session
        self.previous_prompt = ""
        self.closings: deque[str] = deque(maxlen=CLOSINGS_KEPT)  # the closing phrases of the last model prompts
        self.paused = False

    def reset(self) -> None:
        """Forget history, the previous prompt, the vibe and the session summary."""
        self.history.clear()
        self.digest.reset()
        self.closings.clear()
        self.previous_prompt = self.vibe = ""

    def warm_up(self) -> None:
        """One throw-away generation, so the first phrase of the show does not pay for the few-shot prefill."""
        if self.model is not None:
            try:
                self.model.generate(PromptRequest("warm up", self.style), lambda: "")
            except (Abandoned, ValueError) as e:
                log.debug("warm-up answer ignored: %s", e)
            except MODEL_ERRORS as e:  # the phrases will get fallback prompts if it keeps failing
                log.warning("brain model failed its warm-up (%s: %s)", type(e).__name__, e)

    def configure(self, config: BrainConfig) -> None:
        """Take new settings, the one place they are applied: the style preset (AssetError for an unknown
        one, and nothing changes), the vibe, and the rest of the config (history, rate, budget...)."""
        self.style = self.assets.style(config.style)
        self.config, self.vibe = config, config.vibe

    def step(self, phrase: Phrase, newer_waiting: Callable[[], bool] = lambda: False) -> ImagePrompt | None:
        """The prompt for `phrase`; None when paused, stale, or made only of blocked words."""
        start = time.perf_counter()
        started_at = time.monotonic()
        since = phrase.t_start - self.config.history_seconds
        history = tuple(p.text for p in self.history if p.t_end >= since)
        self.history.append(phrase)
        self.digest.add(phrase.text, self.assets)
        if self.paused:
            return None
        if self.assets.blocked(phrase.text) and not english_words(phrase.text, self.assets):
            log.info("phrase made only of blocked words: no prompt")
            return None
        reason = self.absent_reason
        if self.model is not None:
            request = PromptRequest(phrase.text, self.style, history, self.previous_prompt, self.vibe,
                                    self.assets.gloss(phrase.text))
            should_stop = _stopper(newer_waiting, start + self.config.time_budget_seconds)

            def ask() -> ImagePrompt:
                answer = parse_answer(self.model.generate(request, should_stop))  # type: ignore[union-attr]
                prompt = self._compose(self._varied(self._restored(self._checked(answer.prompt), phrase.text)))
                return self._result(prompt, phrase, answer.mood, "model", "", start, started_at)

            result = _asked(ask, f"over the {self.config.time_budget_seconds:g} s time budget")
            if result.superseded:
                log.debug("phrase %r dropped: a newer one is waiting", phrase.text)
                return None
            if result.value is not None:
                return result.value
            reason = result.reason
        prompt = fallback_prompt(phrase.text, self.style, self.assets, vibe=self.vibe,
                                 previous=self.previous_prompt, max_words=self.config.max_words)
        log.debug("fallback prompt for %r: %s", phrase.text, reason)
        return self._result(prompt, phrase, "", "fallback", reason, start, started_at)

    def summarize(self, interrupted: Callable[[], bool] = lambda: False) -> Summary | None:
        """The slow brain: a summary of the session so far and an image prompt for it.

        None when paused, when nothing was said since the last summary, or when `interrupted()`
        turned true during the generation (a phrase goes first; the digest keeps what it had).
        """
        if self.paused or not self.digest.new_speech:
            return None
        start = time.perf_counter()
        reason = self.absent_reason
        if self.model is not None:
            request = SummaryRequest(self.digest.summary, self.digest.new_speech, self.style, self.vibe,
                                     self.assets.gloss(self.digest.new_speech))
            should_stop = _stopper(interrupted, start + SUMMARY_BUDGET_SECONDS)

            def ask() -> Summary:
                answer = parse_summary(self.model.summarize(request, should_stop))  # type: ignore[union-attr]
                text = self._checked_summary(answer.summary)
                return self._summary(text, self._compose(self._checked(answer.prompt)), "model", "", start)

            result = _asked(ask, f"over the {SUMMARY_BUDGET_SECONDS:g} s summary budget")
            if result.superseded:
                log.debug("summary interrupted by a phrase or a control")
                return None
            if result.value is not None:
                return result.value
            reason = result.reason
        text, prompt = fallback_summary(self.digest, self.style, self.assets, vibe=self.vibe,
                                        max_words=self.config.max_words)
        return self._summary(text, prompt, "fallback", reason, start)

    def _summary(self, text: str, prompt: str, source: str, reason: str, start: float) -> Summary:
        self.digest.settle(text)
        return Summary(text, prompt, source, reason, (time.perf_counter() - start) * 1000.0,  # type: ignore[arg-type]
                       self.model.name if self.model else "")

    def _checked_summary(self, text: str) -> str:
        """The model's summary made printable English; ValueError when it cannot be shown."""
        text = repair_french(" ".join("".join(c if c.isprintable() else " " for c in text).split()), self.assets)
        blocked = self.assets.blocked(text)
        if blocked:
            raise ValueError(f"blocklisted word {blocked[0]!r} in the summary")
        said = {w.lower() for w in words_of(text)}
        if len(said) < 3:
            raise ValueError("summary too short")
        for example in (e[2] for e in SUMMARY_EXAMPLES):
            shown = {w.lower() for w in words_of(example)}
            if len(said & shown) >= COPIED_SHARE * len(said | shown):
                raise ValueError("copied a few-shot example")
        return text

    def _result(self, prompt: str, phrase: Phrase, mood: str, source: str, reason: str, start: float,
                started_at: float) -> ImagePrompt:
        self.previous_prompt = prompt
        return ImagePrompt(prompt, phrase.text, self.style.name, mood, source, reason,  # type: ignore[arg-type]
                           (time.perf_counter() - start) * 1000.0, self.model.name if self.model else "",
                           phrase_closed_at=phrase.closed_at, brain_start=started_at, brain_end=time.monotonic())

    def _checked(self, prompt: str) -> str:
        """The model's prompt after repairs; ValueError when it cannot be used."""
        french = self.assets.french_words(prompt)
        if len(french) * FRENCH_SHARE > len(words_of(prompt)):
            raise ValueError(f"French left untranslated ({', '.join(french[:3])})")
        prompt = repair_french(prompt, self.assets)  # a few stray French words: swap or drop them
        scene = prompt.removeprefix(self.style.medium).strip(" ,").lower()
        if any(scene == e.scene.lower() for e in self.assets.examples):
            raise ValueError("copied a few-shot example")
        said = [w.lower() for w in words_of(scene)]
        if len(said) >= 6 and len(set(said)) < len(said) * DISTINCT_SHARE:
            raise ValueError("repetitive output")
        blocked = self.assets.blocked(prompt)
        if blocked:
            raise ValueError(f"blocklisted word {blocked[0]!r}")
        if not scene:
            raise ValueError("nothing but the style")
        return prompt

    def _scene(self, prompt: str) -> str:
        """The model's part of a prompt: what follows the preset's medium."""
        if prompt.lower().startswith(self.style.medium.lower()):
            return prompt[len(self.style.medium):].strip(" ,")
        return prompt

    def _restored(self, prompt: str, phrase: str) -> str:
        """The prompt with the phrase's visual words the model dropped put back (fallback.restore_said)."""
        return f"{self.style.medium}, {restore_said(self._scene(prompt), phrase, self.assets)}"

    def _varied(self, prompt: str) -> str:
        """The variety rule: a closing phrase that would close more than CLOSING_SHARE of the last CLOSINGS_KEPT
        model prompts (this one included; the show's first is free) is dropped: a small model copies an
        example's "dark green and grey" whatever was said. The preset's light, added after, is the look the
        operator chose and is not counted."""
        parts = [p.strip() for p in self._scene(prompt).split(",") if p.strip()]
        allowed = max(1.0, CLOSING_SHARE * (len(self.closings) + 1))
        while len(parts) > 1 and list(self.closings).count(normalize(parts[-1])) + 1 > allowed:
            parts.pop()
        self.closings.append(normalize(parts[-1]) if len(parts) > 1 else "")
        return f"{self.style.medium}, {', '.join(parts)}"

    def _compose(self, prompt: str) -> str:
        """Style first (added when an instruct model left it out), then the vibe and the preset's light."""
        if not prompt.lower().startswith(self.style.medium.lower()):
            prompt = f"{self.style.medium}, {prompt}"
        vibe = "" if self.assets.blocked(self.vibe) else repair_french(self.vibe, self.assets)
        tail = ", ".join(p for p in (vibe, self.style.light) if p)
        # The model's part gives way, so the vibe and the preset's light always fit.
        prompt = fit_clip(finish_prompt(prompt, self.config.max_words), self.config.max_words - len(tail.split()),
                          CLIP_USABLE_TOKENS - clip_token_estimate(", " + tail))
        return finish_prompt(f"{prompt}, {tail}", self.config.max_words)


T = TypeVar("T")


@dataclass(frozen=True)
class Asked(Generic[T]):
    """How asking the model went: its value, or why the fallback answers instead, or superseded."""

    value: T | None = None
    reason: str = ""
    superseded: bool = False


def _asked(ask: Callable[[], T], over_budget: str) -> Asked[T]:
    """Run `ask()`; a stop, a bad answer or a model error becomes the reason the fallback answers."""
    try:
        return Asked(ask())
    except Abandoned as e:
        return Asked(superseded=True) if str(e) == SUPERSEDED else Asked(reason=over_budget)
    except ValueError as e:
        return Asked(reason=f"bad model output: {e}")
    except BackendUnavailable as e:  # a server down or erroring: its own words, no traceback per phrase
        return Asked(reason=str(e))
    except MODEL_ERRORS as e:
        log.warning("brain model failed", exc_info=True)
        return Asked(reason=f"model error ({type(e).__name__}: {e})")


def _stopper(interrupted: Callable[[], bool], deadline: float) -> Callable[[], str]:
    """A `should_stop` for the model: SUPERSEDED when interrupted, TIMEOUT after the deadline."""
    def should_stop() -> str:
        if interrupted():
            return SUPERSEDED
        return TIMEOUT if time.perf_counter() > deadline else ""

    return should_stop


