"""The brain's word lists: style presets, few-shot examples, the French->English visual lexicon, stopwords
and the blocklist (files in `voicevibe/assets/`), loaded once into `Assets`; and the word helpers
every list is matched with."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


LETTERS = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")  # words; "l'enfant" -> "l", "enfant"


class AssetError(RuntimeError):
    """A brain asset file is missing or malformed."""


def normalize(word: str) -> str:
    """Lower case, no accents, ligatures opened: the key every word list is matched on."""
    word = word.lower().replace("œ", "oe").replace("æ", "ae").replace("’", "'")
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


def lexicon_key(word: str) -> str:
    """Lower case with accents kept: "scene" (English) must not match "scène" (French)."""
    return unicodedata.normalize("NFC", word.lower().replace("’", "'"))


def words_of(text: str) -> list[str]:
    """The words of a text, in order (apostrophes and digits split words)."""
    return LETTERS.findall(text.replace("’", "'"))


@dataclass(frozen=True)
class Style:
    """A style preset: the medium that opens a prompt and the light/colour that closes it."""

    name: str
    medium: str
    light: str


@dataclass(frozen=True)
class Example:
    """One few-shot example: what was said, the scene (subject, action, light) and mood it should give."""

    speech: str
    scene: str
    mood: str
    gloss: str = ""  # the speech's words in English when it is French (Assets.gloss), shown to the model beside it


@dataclass(frozen=True)
class Assets:
    """Every word list the brain uses, loaded once by the brain's owner."""

    styles: dict[str, Style]
    examples: tuple[Example, ...]
    lexicon: dict[str, str]  # lexicon_key(French) -> English
    english_stopwords: frozenset[str]
    french_stopwords: frozenset[str]
    blocklist: frozenset[str]
    both: frozenset[str] = frozenset()  # French function words that are English words too: "car", "son", "pour"

    @functools.cached_property
    def longest(self) -> int:
        """The most words a lexicon entry has ("coucher du soleil": 3)."""
        return max((key.count(" ") + 1 for key in self.lexicon), default=1)

    @functools.cached_property
    def english_values(self) -> frozenset[str]:
        """The lexicon's English words: the visual vocabulary an English phrase's key words are found in."""
        return frozenset(v.lower() for v in self.lexicon.values())

    def translate(self, word: str) -> str | None:
        """The English for a French word or expression in the lexicon (plurals too), else None."""
        key = lexicon_key(word)
        singular = " ".join(w[:-1] if w.endswith(("s", "x")) and len(w) > 2 else w for w in key.split(" "))
        for candidate in (key, key[:-1] if key.endswith(("s", "x")) else None, singular):
            if candidate and candidate in self.lexicon:
                return self.lexicon[candidate]
        return None

    def units(self, text: str) -> list[str]:
        """The words of a text, in order, with the lexicon's expressions kept whole: "un coucher de soleil"
        -> "un", "coucher de soleil" ("feux d'artifice" -> "feux d artifice": apostrophes split words)."""
        words, out, i = words_of(text), [], 0
        while i < len(words):
            for n in range(min(self.longest, len(words) - i), 1, -1):
                expression = " ".join(words[i:i + n])
                if self.translate(expression) is not None:
                    out.append(expression)
                    i += n
                    break
            else:
                out.append(words[i])
                i += 1
        return out

    def is_french(self, text: str) -> bool:
        """True when something in `text` is French only: "a red car" is English, "il dort car il pleut" French."""
        return bool(self.french_words(text))

    def gloss(self, text: str) -> str:
        """A French phrase's content words in English, in the phrase's order ("renard rouge" -> "fox, red");
        "" when nothing in it is French. Words the lexicon lacks are kept as said (the model may know them)."""
        if not self.is_french(text):
            return ""
        out: list[str] = []
        for word in self.units(text):
            english = self.translate(word)
            if english is None and (self.is_stopword(word, french=True) or len(word) < 2):
                continue
            english = english or word.lower()
            if english not in out:
                out.append(english)
        return ", ".join(out)

    def is_stopword(self, word: str, *, french: bool) -> bool:
        """True for a function word of the phrase's language: "car" in a French phrase ("because"),
        not in an English one."""
        key = normalize(word)
        return key in self.english_stopwords or (key in self.french_stopwords and (french or key not in self.both))

    def french_words(self, text: str) -> list[str]:
        """Words of `text` that are French and not English (lexicon entries, French-only stopwords)."""
        found = []
        for word in self.units(text):
            key = normalize(word)
            if key in self.english_stopwords or key in self.both or len(key) == 1:  # "s" of "mother's"
                continue
            english = self.translate(word)
            if (english is not None and normalize(english) not in (key, key[:-1])) or key in self.french_stopwords:
                found.append(word)
        return found

    def blocked(self, text: str) -> list[str]:
        """Blocklisted words in `text` (whole words, any case or accent, simple plurals)."""
        hits = []
        for word in words_of(text):
            keys = {normalize(word), *normalize(word).split("-")}
            stems = keys | {k[:-1] for k in keys if k.endswith(("s", "x"))} | {k[:-2] for k in keys if k.endswith("es")}
            if stems & self.blocklist:
                hits.append(word)
        return hits

    def style(self, name: str) -> Style:
        """The named preset; an unknown name is an AssetError naming the known ones."""
        try:
            return self.styles[name]
        except KeyError:
            raise AssetError(f"unknown style {name!r}; known styles: {', '.join(self.styles)}") from None


def _asset_text(name: str) -> str:
    try:
        return (resources.files("voicevibe") / "assets" / name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise AssetError(f"voicevibe/assets/{name}: cannot read ({e})") from e


def _lines(name: str) -> list[str]:
    return [line.strip() for line in _asset_text(name).splitlines() if line.strip() and not line.startswith("#")]


def _json(name: str) -> Any:
    try:
        return json.loads(_asset_text(name))
    except json.JSONDecodeError as e:
        raise AssetError(f"voicevibe/assets/{name}: not valid JSON ({e})") from e


def load_assets(extra_blocklist: str = "") -> Assets:
    """Read every asset file of the package, plus an optional blocklist file (a few ms; once per brain)."""
    try:
        styles = {name: Style(name, d["medium"], d["light"])
                  for name, d in _json("presets.json").items() if not name.startswith("_")}
        examples = tuple(Example(e["speech"], e["scene"], e["mood"]) for e in _json("examples.json"))
    except (KeyError, TypeError, AttributeError) as e:
        raise AssetError(f"voicevibe/assets: a preset or example lacks a field ({e!r})") from e
    lexicon: dict[str, str] = {}
    for line in _lines("lexicon_fr_en.tsv"):
        french, sep, english = line.partition("\t")
        if not sep or not english.strip():
            raise AssetError(f"voicevibe/assets/lexicon_fr_en.tsv: expected french<TAB>english, got {line!r}")
        lexicon[" ".join(lexicon_key(w) for w in words_of(french))] = english.strip()  # "feu d'artifice": 3 words
    stop = {lang: frozenset(normalize(w) for w in words.split())
            for lang, _, words in (line.partition(":") for line in _lines("stopwords.txt"))}
    blocked = _lines("blocklist.txt")
    if extra_blocklist:
        try:
            text = Path(extra_blocklist).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise AssetError(f"{extra_blocklist}: cannot read the blocklist file ({e})") from e
        blocked += [w.strip() for w in text.splitlines() if w.strip() and not w.startswith("#")]
    blocklist = frozenset(normalize(w) for w in blocked)
    assets = Assets(styles, examples, lexicon, stop.get("en", frozenset()), stop.get("fr", frozenset()), blocklist,
                    stop.get("both", frozenset()))
    return dataclasses.replace(assets, examples=tuple(dataclasses.replace(e, gloss=assets.gloss(e.speech))
                                                      for e in examples))
