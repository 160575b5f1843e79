"""The show file: a performer's prepared scenes (cues), loaded from TOML and checked like the config.

```toml
[show]
name = "Night swim"
transition_seconds = 3.0     # optional: overrides show.transition_seconds
seed_lock = true             # optional: overrides show.seed_lock
seed = 1234                  # optional: the first seed

[[cue]]
name = "Harbour"
prompt = "ink drawing, a harbour at dusk, lanterns on black water"
seed = 7
triggers = ["harbour", "le port"]

[[cue]]
name = "Storm"
phrase = "a storm breaks over the sea"   # goes through the brain
style = "film-noir"
vibe = "cold, loud"
key = "s"
```

A cue has a name and exactly one of `prompt` (sent as written, bypassing the brain) or
`phrase` (handed to the brain as if spoken); optionally `style`, `vibe`, `seed`, `triggers`
(words or short phrases, any language, that fire it when heard) and `key` (one letter or digit;
cues 1-9 get the keys 1-9 unless they name another). An unknown key, a wrong type, a duplicate
cue name, trigger or key raises `ShowError` naming the file, the cue and the key.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from voicevibe.config import ConfigError
from voicevibe.show.triggers import normalize_words

MAX_CUES = 99
MAX_TEXT_CHARS = 1000  # a prompt or phrase; OSC cuts prompts to the datagram anyway
MAX_TRIGGER_WORDS = 6
RESERVED_KEYS = frozenset("fv")  # the window's own keys (F freeze, V stage view; space and Esc are not letters)
SEED_MAX = 2**31 - 1


class ShowError(ConfigError):
    """A show file cannot be used; the message names the file, the cue and the key."""


@dataclass(frozen=True)
class Cue:
    """One prepared scene."""

    number: int  # 1-based, its place in the file
    name: str
    prompt: str = ""  # a fixed prompt, sent as written
    phrase: str = ""  # or a phrase for the brain
    style: str = ""  # "" keeps the current style
    vibe: str | None = None  # None keeps the current vibe; "" clears it
    seed: int | None = None
    triggers: tuple[str, ...] = ()
    key: str = ""

    @property
    def text(self) -> str:
        """The prompt, or the phrase."""
        return self.prompt or self.phrase


@dataclass(frozen=True)
class ShowFile:
    """A loaded show file: its defaults and its cues in order."""

    path: str
    name: str
    cues: tuple[Cue, ...]
    transition_seconds: float | None = None  # None: the config's
    seed_lock: bool | None = None
    seed: int | None = None

    def find(self, cue: int | str) -> Cue | None:
        """A cue by 1-based number or by name (case and accents ignored), or None."""
        if isinstance(cue, int):
            return self.cues[cue - 1] if 1 <= cue <= len(self.cues) else None
        wanted = normalize_words(cue)
        return next((c for c in self.cues if normalize_words(c.name) == wanted), None)

    def by_key(self, key: str) -> Cue | None:
        """The cue a key fires, or None."""
        return next((c for c in self.cues if c.key == key), None)


# field: (type(s), description) for the messages
_SHOW_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str,), "a string"), "transition_seconds": ((int, float), "a number from 0 to 30"),
    "seed_lock": ((bool,), "true or false"), "seed": ((int,), f"an integer from 0 to {SEED_MAX}")}
_CUE_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "name": ((str,), "a string"), "prompt": ((str,), "a string"), "phrase": ((str,), "a string"),
    "style": ((str,), "a style preset name"), "vibe": ((str,), "a string"),
    "seed": ((int,), f"an integer from 0 to {SEED_MAX}"), "triggers": ((list,), "a list of strings"),
    "key": ((str,), "one letter or digit")}


def _typed(where: str, key: str, value: Any, fields: Mapping[str, tuple[tuple[type, ...], str]]) -> Any:
    """`value` if it has the field's type (a bool is not a number), else ShowError."""
    if key not in fields:
        raise ShowError(f"{where}: unknown key {key!r}; known keys: " + ", ".join(fields))
    kinds, described = fields[key]
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        raise ShowError(f"{where}: {key} = {value!r}: expected {described}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        limit = 30.0 if key == "transition_seconds" else SEED_MAX
        if not (math.isfinite(value) and 0 <= value <= limit):
            raise ShowError(f"{where}: {key} = {value!r}: expected {described}")
    if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
        raise ShowError(f"{where}: {key} is {len(value)} characters: at most {MAX_TEXT_CHARS}")
    return value


def _triggers(where: str, values: list[Any]) -> tuple[str, ...]:
    out = []
    for value in values:
        if not isinstance(value, str) or not normalize_words(value):
            raise ShowError(f"{where}: triggers: {value!r} is not a word or phrase (expected a list of strings, "
                            "e.g. [\"harbour\", \"le port\"])")
        if len(normalize_words(value)) > MAX_TRIGGER_WORDS:
            raise ShowError(f"{where}: triggers: {value!r} has more than {MAX_TRIGGER_WORDS} words")
        out.append(" ".join(value.split()))
    return tuple(out)


def _cue(where: str, number: int, table: Any, styles: Collection[str] | None) -> Cue:
    if not isinstance(table, Mapping):
        raise ShowError(f"{where}: a [[cue]] must be a table of keys, got {table!r:.60}")
    values = {key: _typed(where, key, value, _CUE_FIELDS) for key, value in table.items()}
    name = " ".join(values.get("name", "").split())
    if not name:
        raise ShowError(f"{where}: name: every cue needs a name, e.g. name = \"Harbour\"")
    prompt, phrase = (" ".join(values.get(k, "").split()) for k in ("prompt", "phrase"))
    if bool(prompt) == bool(phrase):
        raise ShowError(f"{where}: prompt/phrase: a cue has exactly one of prompt (sent as written) or phrase "
                        "(through the brain)")
    style = values.get("style", "").strip()
    if style and styles is not None and style not in styles:
        raise ShowError(f"{where}: style = {style!r}: unknown style preset; known: " + ", ".join(sorted(styles)))
    key = values.get("key", "")
    if key and not (len(key) == 1 and key.isascii() and key.isalnum() and key.lower() not in RESERVED_KEYS
                    and key != "0"):
        raise ShowError(f"{where}: key = {key!r}: expected one letter or a digit 1-9 (not F: freeze, V: stage view)")
    return Cue(number, name, prompt, phrase, style, values.get("vibe"), values.get("seed"),
               _triggers(where, values.get("triggers", [])), key.lower())


def parse_show(data: Mapping[str, Any], path: str, *, styles: Collection[str] | None = None) -> ShowFile:
    """A Show from a parsed TOML document; ShowError names the file, the cue and the key."""
    for table in data:
        if table not in ("show", "cue"):
            raise ShowError(f"{path}: unknown table [{table}]; a show file has [show] and [[cue]] tables")
    head = data.get("show", {})
    if not isinstance(head, Mapping):
        raise ShowError(f"{path}: [show] must be a table")
    defaults = {key: _typed(f"{path}: [show]", key, value, _SHOW_FIELDS) for key, value in head.items()}
    tables = data.get("cue", [])
    if not isinstance(tables, list) or not tables:
        raise ShowError(f"{path}: no cues: add [[cue]] tables, each with a name and a prompt or a phrase")
    if len(tables) > MAX_CUES:
        raise ShowError(f"{path}: {len(tables)} cues: at most {MAX_CUES}")
    cues: list[Cue] = []
    for number, table in enumerate(tables, 1):
        label = table.get("name") if isinstance(table, Mapping) and isinstance(table.get("name"), str) else ""
        cues.append(_cue(f"{path}: cue {number}" + (f" \"{label}\"" if label else ""), number, table, styles))
    cues = _assign_keys(path, cues)
    _check_unique(path, cues)
    transition = defaults.get("transition_seconds")
    return ShowFile(path, defaults.get("name", Path(path).stem), tuple(cues),
                float(transition) if transition is not None else None, defaults.get("seed_lock"),
                defaults.get("seed"))


def _assign_keys(path: str, cues: list[Cue]) -> list[Cue]:
    """Cues 1-9 get their digit unless another cue took it."""
    taken = {c.key for c in cues if c.key}
    out = []
    for cue in cues:
        digit = str(cue.number)
        if not cue.key and cue.number <= 9 and digit not in taken:
            cue = dataclasses.replace(cue, key=digit)
        out.append(cue)
    return out


def _check_unique(path: str, cues: list[Cue]) -> None:
    seen: dict[str, dict[Any, Cue]] = {"name": {}, "key": {}, "triggers": {}}
    for cue in cues:
        where = f"{path}: cue {cue.number} \"{cue.name}\""
        items = [("name", normalize_words(cue.name) or (cue.name,)), ("key", cue.key)]
        items += [("triggers", normalize_words(t)) for t in cue.triggers]
        for kind, value in items:
            if not value:
                continue
            other = seen[kind].setdefault(value, cue)
            if other is not cue:
                shown = " ".join(value) if isinstance(value, tuple) else value
                raise ShowError(f"{where}: {kind}: {shown!r} is already used by cue {other.number} "
                                f"\"{other.name}\" (each cue needs its own)")


def load_show(path: str | Path, *, styles: Collection[str] | None = None) -> ShowFile:
    """Read and check a show file; ShowError names the file and the fix."""
    path = Path(path).expanduser()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ShowError(f"{path}: show file not found — check the path") from None
    except tomllib.TOMLDecodeError as e:
        raise ShowError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ShowError(f"{path}: not a UTF-8 text file ({e.reason})") from None
    except OSError as e:
        raise ShowError(f"{path}: cannot read the show file: {e.strerror}") from None
    return parse_show(data, str(path), styles=styles)
