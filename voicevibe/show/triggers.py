"""What the performer says, seen as words: spoken cue triggers and the phrase hygiene (pure, no I/O).

Both compare words the same way: case-folded, accents dropped ("Lumière", "LUMIERE" and a
decomposed "lumie\u0300re" are one word), split on anything that is not a letter or a digit
("l'océan" is "l ocean"). A trigger matches whole words only ("mer" never fires on "merci").

`TriggerMatcher` takes the STT's Word events one piece at a time (a piece that starts with a
space opens a word) and PhraseEnd events; a word counts once it is complete (the next word
began, or a phrase ended). The recent words are kept across phrase ends for
`WINDOW_SECONDS` of audio, so a trigger split by a pause still matches. When a trigger
matches, the words that made it are used up (an utterance fires once) and its cue cannot fire
by voice again for the cooldown.
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from voicevibe.events import PhraseEnd, Word

WINDOW_SECONDS = 10.0  # a trigger's words must all come within this much audio
MAX_WORDS = 32  # recent words kept
_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script


def normalize_words(text: str) -> tuple[str, ...]:
    """The words of `text`, case-folded and without accents."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return tuple(_WORD.findall(plain.replace("œ", "oe").replace("æ", "ae")))


@dataclass(frozen=True)
class Trigger:
    """A cue's trigger, as words."""

    cue: int  # the cue's 1-based number
    words: tuple[str, ...]
    text: str  # as written in the show file


@dataclass(frozen=True)
class TriggerHit:
    """A trigger heard in the transcript."""

    cue: int
    trigger: str  # as written in the show file
    heard: str  # the words heard (normalized)


class TriggerMatcher:
    """Word and PhraseEnd events in, a TriggerHit when a cue's trigger words were just said."""

    def __init__(self, triggers: Iterable[Trigger], cooldown_seconds: float) -> None:
        # Longer triggers first: "red moon" wins over "moon" when both end on the same word.
        self.triggers = sorted(triggers, key=lambda t: -len(t.words))
        self.cooldown = cooldown_seconds
        self._recent: deque[tuple[str, float]] = deque(maxlen=MAX_WORDS)  # complete words and their audio time
        self._piece = ""  # the word being spelled, pieces so far
        self._piece_t = 0.0
        self._last_t = float("-inf")
        self._fired_at: dict[int, float] = {}  # cue -> audio time it last fired by voice

    def step(self, event: Word | PhraseEnd) -> TriggerHit | None:
        """Take one transcript event; the trigger it completes, if any."""
        if isinstance(event, Word):
            if event.t < self._last_t - 1.0:  # a new stream: its clock starts again
                self.reset()
            self._last_t = max(self._last_t, event.t)
            hit = None
            if event.starts_word:
                hit = self._complete()
            if not self._piece:
                self._piece_t = event.t
            self._piece += event.text
            return hit
        return self._complete()

    def reset(self) -> None:
        """Forget the words and the cooldowns (a new stream)."""
        self._recent.clear()
        self._piece = ""
        self._fired_at.clear()
        self._last_t = float("-inf")

    def _complete(self) -> TriggerHit | None:
        """The word being spelled is complete: add it, then look for a trigger ending here."""
        words = normalize_words(self._piece)
        self._piece = ""
        if not words:
            return None
        for word in words:
            self._recent.append((word, self._piece_t))
        now = self._piece_t
        while self._recent and now - self._recent[0][1] > WINDOW_SECONDS:
            self._recent.popleft()
        recent = [w for w, _ in self._recent]
        for trigger in self.triggers:
            size = len(trigger.words)
            if tuple(recent[-size:]) != trigger.words:
                continue
            if now - self._fired_at.get(trigger.cue, float("-inf")) < self.cooldown:
                continue
            self._fired_at[trigger.cue] = now
            self._recent.clear()  # these words are used up: the same utterance never fires twice
            return TriggerHit(trigger.cue, trigger.text, " ".join(trigger.words))
        return None


def parse_word_list(text: str) -> tuple[tuple[str, ...], ...]:
    """A comma-separated list of words or phrases, each normalized to its words."""
    return tuple(words for words in (normalize_words(item) for item in text.split(",")) if words)


def phrase_problem(text: str, ignore: Iterable[tuple[str, ...]], min_words: int) -> str | None:
    """Why a spoken phrase should not reach the brain (only fillers, too short), or None."""
    words = list(normalize_words(text))
    if not words:
        return "no words"
    fillers = sorted(ignore, key=len, reverse=True)
    rest, i = [], 0
    while i < len(words):
        filler = next((f for f in fillers if tuple(words[i:i + len(f)]) == f), None)
        if filler:
            i += len(filler)
        else:
            rest.append(words[i])
            i += 1
    if not rest:
        return "only fillers (show.ignore_phrases)"
    if len(words) < min_words:
        return f"{len(words)} word{'s' if len(words) != 1 else ''}, under show.min_phrase_words = {min_words}"
    return None
