"""The brain's word lists and the prompt builder that needs no model.

`Assets` holds the style presets, few-shot examples, the French->English visual lexicon,
stopwords and the blocklist (files in `voicevibe/assets/`). `fallback_prompt` turns a
phrase into `[medium], [content words in English], [vibe], [light]`; `finish_prompt`
cleans any prompt (model or fallback) and fits it to CLIP's 77 tokens.

No CLIP tokenizer installs offline without torch, so `clip_token_estimate` is a
conservative bound: CLIP's BPE (49,408 merges) gives one token to a common English word
and to each punctuation mark, about 1.3 tokens per word on prompt text; the estimate counts
one token per 5 letters of a word (at least one) and one per punctuation mark, which is
never below the real count for the lower-case English words prompts are made of.
"""

from __future__ import annotations

import logging
import math
import re

from voicevibe.brain.assets import LETTERS, Assets, Style, normalize, words_of

log = logging.getLogger(__name__)

CLIP_USABLE_TOKENS = 75  # 77 minus the start and end tokens
WEIGHT = re.compile(r"\(([^():]*):[\d.]+\)")  # "(word:1.5)" -> "word"
SUBJECT_WORDS = 8  # content words the fallback keeps from a phrase
IDLE_SUBJECT = "abstract flowing shapes"
NEGATIONS = frozenset({"no", "not", "without", "never", "sans", "pas"})


def clip_token_estimate(text: str) -> int:
    """An upper bound on CLIP's token count for `text` (see the module docstring)."""
    words = sum(max(1, math.ceil(len(w) / 5)) for w in re.findall(r"[A-Za-z0-9]+", text))
    others = sum(1 for c in text if not c.isascii() or not (c.isalnum() or c.isspace()))
    return words + others


def fit_clip(text: str, max_words: int, max_tokens: int = CLIP_USABLE_TOKENS) -> str:
    """Cut `text` at a word boundary so it has at most `max_words` words and fits CLIP."""
    words = text.split()[:max_words]
    while words and clip_token_estimate(" ".join(words)) > max_tokens:
        words.pop()
    return " ".join(words).rstrip(" ,;:-")


def finish_prompt(text: str, max_words: int) -> str:
    """Tidy a prompt: one line, no weights, quotes or negated parts, no repeats, CLIP-sized."""
    text = "".join(c if c.isprintable() else " " for c in WEIGHT.sub(r"\1", text))
    text = re.sub(r"[\"`*_\[\]{}()<>|\\]", " ", text)
    text = " ".join(text.split()).strip(" ,.;:-")
    parts, seen = [], set()
    for part in (p.strip(" .;:-") for p in text.split(",")):
        if part.lower().split(" ")[0] in NEGATIONS:
            continue  # SDXL-Turbo draws what is named: "no people" gives people
        if part and part.lower() not in seen:
            seen.add(part.lower())
            parts.append(part)
    return fit_clip(", ".join(parts), max_words)


def english_words(text: str, assets: Assets, *, limit: int = SUBJECT_WORDS) -> list[str]:
    """The content words of a phrase, French ones translated, blocklisted ones dropped."""
    out: list[str] = []
    for word in words_of(text):
        english = assets.translate(word)
        if english is None:
            if assets.is_stopword(word) or len(word) < 2:
                continue
            english = word.lower()
        if assets.blocked(english) or english in out:
            continue
        out.append(english)
        if len(out) == limit:
            break
    return out


def repair_french(text: str, assets: Assets) -> str:
    """Replace French lexicon words left in an English prompt; drop French function words."""
    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        key = normalize(word)
        if key in assets.english_stopwords or len(key) == 1:
            return word
        english = assets.translate(word)
        if english is not None:
            return english
        return "" if key in assets.french_stopwords else word

    return " ".join(LETTERS.sub(swap, text).split())


def fallback_prompt(phrase: str, style: Style, assets: Assets, *, vibe: str = "", previous: str = "",
                    max_words: int = 40) -> str:
    """A prompt built without a model: `[medium], [phrase's words in English], [vibe], [light]`."""
    subject = " ".join(english_words(phrase, assets))
    if not subject and previous:
        return finish_prompt(previous, max_words)  # nothing visual said: keep the picture steady
    vibe_words = " ".join(english_words(vibe, assets, limit=SUBJECT_WORDS))
    parts = [style.medium, subject or IDLE_SUBJECT, vibe_words, style.light]
    return finish_prompt(", ".join(p for p in parts if p), max_words)
