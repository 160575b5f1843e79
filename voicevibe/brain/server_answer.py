"""What a server brain is asked to answer, and how its answer is checked: JSON schemas, GBNF grammars.

Per `brain.server_output` (see SERVER_OUTPUTS) the answer is held to the prompt's JSON by a JSON
schema or, on llama.cpp servers, a grammar. Only the two grammars below are ever sent: an invalid
grammar crashes llama-cpp-python's server (tests check both against llama.cpp's parser for every
style preset). The answer is always checked here too: some servers accept a schema without
enforcing it.
"""

from __future__ import annotations

import json
from typing import Any

from voicevibe.brain.fallback import Style
from voicevibe.brain.llama import MOOD_CHAR, TEXT_CHAR

# What each brain.server_output setting sends: "json_schema" is OpenAI's response_format (Ollama, LM Studio,
# llama-server; llama-cpp-python's server answers it with a 500), "json_object" carries the schema the way
# llama-cpp-python's server honours it (LM Studio refuses it with a 400), "grammar" is llama.cpp's GBNF field.
SERVER_OUTPUTS = ("json_schema", "json_object", "grammar")
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


MOOD_FIELD = '", "mood": "'  # the fixed JSON between two fields, and the ends
ANSWER_END = '"}'
SUMMARY_START = '{"summary": "'


def prompt_grammar(style: Style) -> str:
    """GBNF for a prompt answer: the style and medium written for the model, then its scene and mood."""
    head = f'{{"style": "{_json_text(style.name)}", "prompt": "{_json_text(style.medium)}, '
    return (f"root ::= {gbnf_literal(head)} char{{2,120}} {gbnf_literal(MOOD_FIELD)} moodchar{{1,24}} "
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
