"""Transcript words into phrases: a pause, a full stop or the longest window closes one (pure, no model).

Runs in the main process on the speech engine's events (runtime/phrase_gate.py).
"""

from __future__ import annotations

import time

from voicevibe.config import BrainConfig
from voicevibe.events import Phrase, PhraseEnd, Word, join_words

SENTENCE_END = (".", "!", "?", "…")


class PhraseAssembler:
    """Collects words until a pause, a full stop or the longest window closes a phrase."""

    def __init__(self, config: BrainConfig) -> None:
        self.config = config
        self.words: list[Word] = []

    def step(self, event: Word | PhraseEnd) -> Phrase | None:
        """Take one transcript event; return a phrase when one closes."""
        if isinstance(event, Word):
            self.words.append(event)
            long_enough = len(join_words(self.words)) >= self.config.phrase_min_chars
            if long_enough and event.text.rstrip().endswith(SENTENCE_END):
                return self._close("punctuation")
            if event.t - self.words[0].t >= self.config.phrase_max_seconds:
                return self._close("length")
            return None
        text = join_words(self.words)
        if len(text) >= self.config.phrase_min_chars or (event.reason == "end" and text):
            return self._close(event.reason)
        return None  # too short: it opens the next phrase

    def _close(self, reason: str) -> Phrase:
        words, self.words = self.words, []
        return Phrase(join_words(words), words[0].t, words[-1].t, reason,  # type: ignore[arg-type]
                      closed_at=time.monotonic())
