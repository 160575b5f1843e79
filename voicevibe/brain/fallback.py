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

from voicevibe.brain.assets import LETTERS, Assets, Style, normalize

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
    french = assets.is_french(text)
    for word in assets.units(text):
        english = assets.translate(word)
        if english is None:
            if assets.is_stopword(word, french=french) or len(word) < 2:
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
            return word if normalize(english) == key[:-1] else english  # "oranges" is English too
        return "" if key in assets.french_stopwords and key not in assets.both else word  # "a red car" stays

    return " ".join(LETTERS.sub(swap, text).split())


IRREGULAR = {"children": "child", "men": "man", "women": "woman", "people": "person", "mice": "mouse",
             "geese": "goose", "feet": "foot", "teeth": "tooth", "wolves": "wolf", "horses": "horse"}


def _is_action(word: str) -> bool:
    """An -ing form ("sleeping"), not a noun that ends so ("king", "ring")."""
    return word.endswith("ing") and len(word) > 5


def _stem(word: str) -> str:
    """A rough English stem for matching: "leaves" ~ "leaf", "sleeping" ~ "sleeps", "clouds" ~ "cloud"."""
    word = word.lower()
    if word in IRREGULAR:
        return IRREGULAR[word]
    if word.endswith("ves") and len(word) > 4:
        return word[:-3] + "f"
    for ending in ("ing", "es", "ed", "s"):
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            return word[:-len(ending)]
    return word


def said_words(phrase: str, assets: Assets) -> list[tuple[int, str]]:
    """The phrase's visual words in English with their place in the phrase: lexicon words (French ones
    translated, English ones as said), not actions (a model says "asleep" for "sleeping") nor function words."""
    out: list[tuple[int, str]] = []
    french = assets.is_french(phrase)
    for i, word in enumerate(assets.units(phrase)):
        if assets.is_stopword(word, french=french):
            continue  # French "car" is "because"
        english = assets.translate(word)
        if english is None and word.lower() in assets.english_values:
            english = word.lower()
        if not english or (" " in english and " " not in word):
            continue  # one word said in several ("devant" -> "in front of") is no thing to show
        if not _is_action(english) and english not in assets.english_stopwords \
                and english not in {w for _, w in out} and not assets.blocked(english):
            out.append((i, english))
    return out


def _article(article: str, word: str) -> str:
    """ "a" or "an" before `word`, in the case `article` was written in."""
    fixed = "an" if word[:1].lower() in "aeiou" else "a"
    return fixed.capitalize() if article[:1].isupper() else fixed


def _shown(word: str, scene: str) -> re.Match[str] | None:
    """Where the scene shows `word` (or a form of it: plural, "leaves" for "leaf")."""
    if " " in word:  # an expression ("shooting star"): shown whole, or a plural of it
        return re.search(rf"\b{re.escape(word)}(?:e?s)?\b", scene, re.IGNORECASE)
    stem = _stem(word)
    for match in re.finditer(r"[^\W\d_]+", scene):
        if match.group(0).lower() == word or _stem(match.group(0)) == stem:
            return match
    return None


def restore_said(scene: str, phrase: str, assets: Assets) -> str:
    """The model's scene with the visual words of the phrase it dropped put back.

    A word said next to a word the scene shows ("renard rouge", "vieux vélo") goes in front of
    it ("a fox" -> "a red fox"); the others are added, in the phrase's order, as a part after the
    scene's first part.
    """
    wanted = said_words(phrase, assets)
    at = dict(wanted)
    added = []
    for i, word in wanted:
        if _shown(word, scene):
            continue
        neighbours = [at[j] for j in (i - 1, i + 1) if j in at and _shown(at[j], scene)]
        if neighbours:
            where = _shown(neighbours[0], scene)
            assert where is not None
            head = scene[:where.start()]
            article = re.search(r"\b(an?)\s+$", head, re.IGNORECASE)
            if article:
                head = head[:article.start()] + _article(article.group(1), word) + " "
            scene = f"{head}{word} {scene[where.start():]}"
        else:
            added.append(word)
    if not added:
        return scene
    first, sep, rest = scene.partition(",")
    joined = ", ".join(added) if any(" " in w for w in added) else " ".join(added)  # "shooting star, milky way"
    return f"{first}, {joined}{sep}{rest}"


def fallback_prompt(phrase: str, style: Style, assets: Assets, *, vibe: str = "", previous: str = "",
                    max_words: int = 40) -> str:
    """A prompt built without a model: `[medium], [phrase's words in English], [vibe], [light]`."""
    subject = " ".join(english_words(phrase, assets))
    if not subject and previous:
        return finish_prompt(previous, max_words)  # nothing visual said: keep the picture steady
    vibe_words = " ".join(english_words(vibe, assets, limit=SUBJECT_WORDS))
    parts = [style.medium, subject or IDLE_SUBJECT, vibe_words, style.light]
    return finish_prompt(", ".join(p for p in parts if p), max_words)
