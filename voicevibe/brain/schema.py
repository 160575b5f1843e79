"""The brain's JSON answer: how it is parsed and checked, and the grammars and schemas that hold a model to it.

The model answers `{"style": ..., "prompt": ..., "mood": ...}` (a summary: `{"summary": ..., "prompt":
...}`). Locally each field is filled under a small GBNF grammar whose strings exclude quotes,
backslashes and control characters (so strict `json.loads` always parses). On a server, per
`brain.server_output` (SERVER_OUTPUTS), the answer is held to it by a JSON schema or, on llama.cpp
servers, a grammar. Only the two server grammars below are ever sent: an invalid grammar crashes
llama-cpp-python's server (tests check both against llama.cpp's parser for every style preset). The
answer is always checked here too: some servers accept a schema without enforcing it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from voicevibe.brain.assets import Style

TEXT_CHAR = r'[^"\\\x00-\x1F]'  # no quotes, backslashes or control characters: strict JSON always parses


MOOD_CHAR = "[a-zA-Z -]"


# Bounded strings always close, even when a small model loops ("a sea of grey, a sea of...").
SCENE_FIELD = f"body ::= char{{2,120}}\nchar ::= {TEXT_CHAR}\n"  # GBNF rules for decoding.field_grammar


MOOD_FIELD = f"body ::= moodchar{{1,24}}\nmoodchar ::= {MOOD_CHAR}\n"


SUMMARY_FIELD = f"body ::= char{{10,300}}\nchar ::= {TEXT_CHAR}\n"


SUMMARY_SCENE_FIELD = f"body ::= char{{2,200}}\nchar ::= {TEXT_CHAR}\n"


@dataclass(frozen=True)
class Answer:
    """The fields the brain uses from the model's JSON."""

    prompt: str
    mood: str


def _json_object(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON ({e.msg})") from e


def parse_answer(raw: str) -> Answer:
    """The prompt and mood from the model's JSON; ValueError says what was wrong."""
    data = _json_object(raw)
    if not isinstance(data, dict) or not isinstance(data.get("prompt"), str):
        raise ValueError('JSON without a "prompt" string')
    prompt = " ".join(data["prompt"].split())
    if len(prompt) < 3:
        raise ValueError("empty prompt")
    mood = data.get("mood")
    return Answer(prompt, " ".join(mood.split()).lower() if isinstance(mood, str) else "")


@dataclass(frozen=True)
class SummaryAnswer:
    """The fields the slow brain uses from the model's JSON."""

    summary: str
    prompt: str


def parse_summary(raw: str) -> SummaryAnswer:
    """The summary and its image prompt from the model's JSON; ValueError says what was wrong."""
    data = _json_object(raw)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("summary", "prompt")):
        raise ValueError('JSON without "summary" and "prompt" strings')
    summary, prompt = (" ".join(data[k].split()) for k in ("summary", "prompt"))
    if len(summary) < 10 or len(prompt) < 3:
        raise ValueError("empty summary or prompt")
    return SummaryAnswer(summary, prompt)

# What each brain.server_output setting sends: "json_schema" is OpenAI's response_format (Ollama, LM Studio,
# llama-server; llama-cpp-python's server answers it with a 500), "json_object" carries the schema the way
# llama-cpp-python's server honours it (LM Studio refuses it with a 400), "grammar" is llama.cpp's GBNF field.
SERVER_OUTPUTS = ("json_schema", "json_object", "grammar")  # and "text": plain text, the JSON written by us
PROMPT_CHARS, MOOD_CHARS, SUMMARY_CHARS = 200, 24, 400


def prompt_schema(style: Style) -> dict[str, Any]:
    """The JSON schema of a prompt answer (the same fields the local grammar gives)."""
    return {"type": "object", "properties": {"style": {"type": "string", "enum": [style.name]},
                                             "prompt": {"type": "string", "maxLength": PROMPT_CHARS},
                                             "mood": {"type": "string", "maxLength": MOOD_CHARS}},
            "required": ["style", "prompt", "mood"], "additionalProperties": False}


SUMMARY_SCHEMA = {"type": "object", "properties": {"summary": {"type": "string", "maxLength": SUMMARY_CHARS},
                                                   "prompt": {"type": "string", "maxLength": PROMPT_CHARS}},
                  "required": ["summary", "prompt"], "additionalProperties": False}


def gbnf_literal(text: str) -> str:
    """`text` as a GBNF string literal: quotes and backslashes escaped, all but printable ASCII as \\u or \\U."""
    def char(c: str) -> str:
        if c in '"\\':
            return "\\" + c
        if " " <= c <= "~":
            return c
        return f"\\u{ord(c):04X}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08X}"

    return '"' + "".join(char(c) for c in text) + '"'


def _json_text(text: str) -> str:
    """`text` as it sits inside a JSON string (without the quotes)."""
    return json.dumps(text)[1:-1]


BETWEEN_FIELDS = '", "mood": "'  # the fixed JSON between the prompt and the mood, and the ends
ANSWER_END = '"}'
SUMMARY_START = '{"summary": "'


def prompt_grammar(style: Style) -> str:
    """GBNF for a prompt answer: the style and medium written for the model, then its scene and mood."""
    head = f'{{"style": "{_json_text(style.name)}", "prompt": "{_json_text(style.medium)}, '
    return (f"root ::= {gbnf_literal(head)} char{{2,120}} {gbnf_literal(BETWEEN_FIELDS)} moodchar{{1,24}} "
            f"{gbnf_literal(ANSWER_END)}\nchar ::= {TEXT_CHAR}\nmoodchar ::= {MOOD_CHAR}\n")


def summary_grammar(style: Style) -> str:
    """GBNF for a summary answer: the summary, then an image prompt opened with the style's medium."""
    middle = f'", "prompt": "{_json_text(style.medium)}, '
    return (f"root ::= {gbnf_literal(SUMMARY_START)} char{{10,300}} {gbnf_literal(middle)} char{{2,200}} "
            f"{gbnf_literal(ANSWER_END)}\nchar ::= {TEXT_CHAR}\n")


def checked_json(text: str) -> str:
    """The server's answer as strict JSON text; ValueError when it is no JSON object.

    Control characters inside strings are let through (a schema-made grammar allows them) and
    written back escaped, so the brain's strict parse sees what the server meant.
    """
    try:
        data = json.loads(text, strict=False)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON ({e.msg})") from e
    if not isinstance(data, dict):
        raise ValueError("the server's JSON is not an object")
    return json.dumps(data, ensure_ascii=False)


MOOD_TEXT = re.compile(r'"mood"\s*:\s*"([a-zA-Z -]{1,24})')


def text_answer(style: Style, text: str, *, cut: bool = False) -> str:
    """A prompt answer's JSON from a plain-text completion of the JSON opened up to `style`'s medium
    (prompting.completion_head).

    The scene is what the model wrote up to its closing quote (all of it when it wrote none but
    stopped by itself), the mood what follows `"mood": "`, "" when it wrote none; ValueError when
    nothing usable came, or max_tokens `cut` the scene before its closing quote (as a local answer cut
    there is no JSON).
    """
    scene, quote, rest = text.partition('"')
    if cut and not quote:
        raise ValueError("not JSON (cut off at brain.max_tokens inside the prompt)")
    mood = MOOD_TEXT.search(quote + rest)
    scene = " ".join(scene.split()).strip(" ,")
    if not scene:
        raise ValueError("empty prompt")
    answer = {"style": style.name, "prompt": f"{style.medium}, {scene}", "mood": mood.group(1) if mood else ""}
    return json.dumps(answer, ensure_ascii=False)


def text_summary(text: str) -> str:
    """A summary answer's JSON from a plain-text completion of `{"summary": "` (closed when the stop cut it)."""
    text = text.rstrip()
    for ending in ("", '"}', "}"):
        try:
            return checked_json(text + ending)
        except ValueError:
            continue
    raise ValueError("the summary is not JSON")
