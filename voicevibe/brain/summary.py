"""The slow brain's memory: a bounded digest of the whole session, and the summary made without a model.

`SessionDigest` keeps the last summary, the transcript said since it (the newest
`NEW_SPEECH_CHARS` characters) and a bounded count of the English content words of every
phrase. The model summarises "last summary + what was said since" (a rolling summary), so
its input never grows with the length of the show; `fallback_summary` lists the session's
most frequent visual words and builds a prompt from them.
"""

from __future__ import annotations

from collections import Counter

from voicevibe.brain.assets import Assets, Style
from voicevibe.brain.fallback import english_words, fallback_prompt

NEW_SPEECH_CHARS = 1200  # transcript since the last summary the model sees (about 200 words, 300 tokens)
KEYWORDS_KEPT = 400  # distinct words counted; past this the rarest half is forgotten
SUMMARY_KEYWORDS = 6  # words named by the fallback summary
SEPARATOR = " / "


class SessionDigest:
    """What the slow brain remembers of the session, in bounded space."""

    def __init__(self) -> None:
        self.summary = ""  # the last summary made (model or fallback)
        self.new_speech = ""  # phrases since that summary, newest last
        self.keywords: Counter[str] = Counter()  # English content words of the whole session

    def add(self, phrase: str, assets: Assets) -> None:
        """Remember one phrase."""
        text = f"{self.new_speech}{SEPARATOR}{phrase}" if self.new_speech else phrase
        if len(text) > NEW_SPEECH_CHARS:
            text = text[-NEW_SPEECH_CHARS:].partition(" ")[2]  # cut at a word boundary
        self.new_speech = text
        # An accented word the lexicon did not translate is French: it would leak into an English prompt.
        self.keywords.update(w for w in english_words(phrase, assets) if w.isascii())
        if len(self.keywords) > KEYWORDS_KEPT:
            self.keywords = Counter(dict(self.keywords.most_common(KEYWORDS_KEPT // 2)))

    def settle(self, summary: str) -> None:
        """A summary was made: it becomes the memory, and what was said since starts again."""
        self.summary, self.new_speech = summary, ""

    def reset(self) -> None:
        """Forget the session."""
        self.summary = self.new_speech = ""
        self.keywords.clear()


def fallback_summary(digest: SessionDigest, style: Style, assets: Assets, *, vibe: str = "",
                     max_words: int = 40) -> tuple[str, str]:
    """(summary text, image prompt) from the session's most frequent content words, no model."""
    top = [w for w, _ in digest.keywords.most_common(SUMMARY_KEYWORDS)]
    text = f"So far: {', '.join(top)}." if top else "So far: nothing visual."
    return text, fallback_prompt(" ".join(top), style, assets, vibe=vibe, max_words=max_words)
