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
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from voicevibe.brain.assets import Example
from voicevibe.brain.decoding import GrammarDecoder
from voicevibe.brain.prompting import (
    REPEAT_PENALTY,
    SUMMARY_HEAD,
    SUMMARY_MAX_TOKENS,
    PromptRequest,
    SummaryRequest,
    chat_messages,
    completion_head,
    completion_text,
    summary_text,
)
from voicevibe.brain.schema import MOOD_FIELD, SCENE_FIELD, SUMMARY_FIELD, SUMMARY_SCENE_FIELD
from voicevibe.config import BrainConfig
from voicevibe.hub import ModelError

# OpenMP spin-waiting makes llama.cpp 10-30x slower beside the busy STT thread on 2 cores; libgomp reads
# this when llama_cpp's libraries load, so it is set when this module is imported, before any llama_cpp import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

log = logging.getLogger(__name__)


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


