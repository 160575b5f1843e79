"""Grammar-constrained decoding on a llama.cpp model at the speed of unconstrained decoding.

llama-cpp-python applies a GBNF grammar to every one of the vocabulary's tokens at every step:
with Gemma's 262k-token vocabulary that tripled the time per token here (33 -> 103 ms on one
core, bench/brain.py). `GrammarDecoder` does what llama.cpp's own `common_sampler` does
("grammar first try"): it asks the grammar about the model's favourite token only, and about
the next best few when that one is refused, and about the whole vocabulary only when all of
those are refused. From the same cache state, greedy decoding gives exactly the tokens a full
grammar pass gives (tests/test_brain_llm.py checks it on the real 270M).

It also reuses the model's KV cache for the longest common token prefix with the previous
call (the fixed few-shot text comes first in every prompt), and it fills a JSON answer field
by field: the known text between two fields is appended to the prompt and evaluated in one
batch instead of being generated token by token. The grammar of a field lets the model start
that known text itself (a token like `",` is often its choice to close a string), so the
tokens it picks are the ones a grammar for the whole answer allows.
"""

from __future__ import annotations

import ctypes
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from voicevibe.brain.prompting import Abandoned

log = logging.getLogger(__name__)

TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])  # llama_token_data
CANDIDATES = 40  # the model's best tokens asked about when its favourite is refused (llama.cpp's top_k default)
PENALTY_WINDOW = 64  # generated tokens the repeat penalty looks back on (llama-cpp-python's last_n_tokens_size)


def field_grammar(body: str, closing: str) -> str:
    """GBNF for `body` then `closing`, where only the first character of `closing` is required."""
    chars = [json.dumps(c) for c in closing]
    tail = chars[0] + "".join(f" ({c}" for c in chars[1:]) + ")?" * (len(chars) - 1)
    return f"root ::= body {tail}\n{body}"


class GrammarDecoder:
    """Token-by-token decoding under GBNF grammars on one loaded `llama_cpp.Llama` (its thread only)."""

    def __init__(self, llm: Any, *, temperature: float = 0.0, repeat_penalty: float = 1.0, seed: int = 0) -> None:
        import llama_cpp

        self.llm, self.temperature, self.repeat_penalty = llm, temperature, repeat_penalty
        self._lib = llama_cpp
        self._vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self.n_vocab = llm.n_vocab()
        self.eos = llm.token_eos()
        self.rng = np.random.default_rng(seed)
        self.full_passes = 0  # steps where every candidate was refused and the whole vocabulary was checked
        self.tokens_generated = 0
        self._last_count, self._complete = 0, False  # of the last field generated
        self.last_fields: list[tuple[str, int]] = []  # (prompt, tokens generated) per field of the last fill

    def fill(self, prompt: str, fields: Sequence[tuple[str, str]], max_tokens: int,
             should_stop: Callable[[], str], *, add_bos: bool = True) -> str:
        """Generate each field under its grammar, each followed by its fixed text; return all that was added.

        `fields` pairs GBNF rules defining `body` (the field's text) with the literal text that
        closes the field (at least one character, e.g. the closing quote). Raises Abandoned when
        `should_stop()` gives a reason.
        """
        added = ""
        budget = max_tokens
        self.last_fields = []
        for body, closing in fields:
            text = self._generate(prompt + added, field_grammar(body, closing), budget, should_stop, add_bos)
            self.last_fields.append((prompt + added, self._last_count))
            budget -= self._last_count
            if budget <= 0 or not self._complete:
                return added + text  # cut off: the caller's JSON parse says so
            started = max(k for k in range(1, len(closing) + 1) if text.endswith(closing[:k]))
            added += text + closing[started:]
        return added

    def _generate(self, prompt: str, grammar: str, max_tokens: int, should_stop: Callable[[], str],
                  add_bos: bool) -> str:
        lib = self._lib
        tokens = self.llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True)
        sampler = lib.llama_sampler_init_grammar(self._vocab, grammar.encode("utf-8"), b"root")
        if not sampler:
            raise ValueError(f"llama.cpp refused the grammar:\n{grammar}")
        out: list[int] = []
        self._complete = False
        try:
            self._feed(tokens)
            for _ in range(max_tokens):
                reason = should_stop()
                if reason:
                    raise Abandoned(reason)
                token = self._choose(sampler, out)
                lib.llama_sampler_accept(sampler, token)
                out.append(token)
                if self._allowed(sampler, np.array([self.eos]))[0]:
                    self._complete = True  # the grammar is satisfied: nothing more may follow
                    break
                self.llm.eval([token])
        finally:
            lib.llama_sampler_free(sampler)
            self._last_count = len(out)
            self.tokens_generated += len(out)
        return self.llm.detokenize(out, prev_tokens=tokens).decode("utf-8", errors="replace")

    def _feed(self, tokens: list[int]) -> None:
        """Evaluate `tokens`, keeping the cached prefix they share with what the model last saw.

        `Llama.input_ids`/`n_tokens` are llama-cpp-python's own bookkeeping of the KV cache, not a
        documented API: this is the one place that reads and sets them, for llama-cpp-python 0.3.36
        (pinned; the prefix reuse is checked against a full pass on the real model in the tests).
        """
        llm = self.llm
        cached = llm.input_ids[:llm.n_tokens].tolist()
        keep = min(llm.longest_token_prefix(cached, tokens), len(tokens) - 1)  # re-evaluate one: fresh logits
        llm.n_tokens = keep  # eval() drops the KV cells from here on
        llm.eval(tokens[keep:])

    def _choose(self, sampler: Any, generated: list[int]) -> int:
        logits = np.ctypeslib.as_array(self._lib.llama_get_logits_ith(self.llm.ctx, -1), shape=(self.n_vocab,))
        if self.repeat_penalty != 1.0 and generated:
            logits = logits.copy()
            seen = np.unique(generated[-PENALTY_WINDOW:])
            old = logits[seen]
            logits[seen] = np.where(old > 0, old / self.repeat_penalty, old * self.repeat_penalty)
        if self.temperature == 0.0:
            best = int(np.argmax(logits))
            if self._allowed(sampler, np.array([best]))[0]:
                return best
        top = np.argpartition(logits, -CANDIDATES)[-CANDIDATES:]
        top = top[np.argsort(-logits[top], kind="stable")]
        ok = self._allowed(sampler, top)
        if not ok.any():
            self.full_passes += 1
            every = np.arange(self.n_vocab, dtype=np.int32)
            allowed = every[self._allowed(sampler, every)]
            if not len(allowed):
                raise ValueError("the grammar allows no token here")
            top = allowed[np.argsort(-logits[allowed], kind="stable")][:CANDIDATES]
            ok = np.ones(len(top), dtype=bool)
        candidates = top[ok]
        if self.temperature == 0.0:
            return int(candidates[0])
        weights = np.exp((logits[candidates] - logits[candidates[0]]) / self.temperature)
        return int(self.rng.choice(candidates, p=weights / weights.sum()))

    def _allowed(self, sampler: Any, ids: np.ndarray) -> np.ndarray:
        """Which of `ids` the grammar accepts next (one llama_sampler_apply on just those tokens)."""
        data = np.zeros(len(ids), dtype=TOKEN_DATA)
        data["id"] = ids
        lib = self._lib
        array = lib.llama_token_data_array(data=data.ctypes.data_as(lib.llama_token_data_p), size=len(ids),
                                           selected=-1, sorted=False)
        lib.llama_sampler_apply(sampler, ctypes.byref(array))
        return np.isfinite(data["logit"])
