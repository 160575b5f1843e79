"""Brain bench: latency of a phrase -> prompt on the bundled Gemma 3 270M, against bare llama.cpp calls.

Writes bench/RESULTS-brain.md. For each thread count, every sample phrase (10 English, 10
French) goes through `Brain.step` (few-shot text, field-by-field grammar-checked decoding,
JSON parse, repairs, checks, prompt assembly), then through two references on the same text:

Each measured call starts with the fixed few-shot text in llama.cpp's cache and the phrase not
yet evaluated, as in a show.

- bare: the same llama.cpp work with no grammar and no Python around it: one non-streamed
  `create_completion` per JSON field, on the same prompt text as the brain's, for exactly as
  many tokens as the brain generated there. overhead = median(brain) / median(bare).
- naive: one `create_completion` with a GBNF grammar for the whole answer (what the brain did
  before: llama-cpp-python checks the grammar against all 262k tokens at every step).

French survival counts French words in the model's raw prompt (before the lexicon repair)
and in the final prompt. Run it under `flock /tmp/bench.lock` on a shared machine.

    .venv/bin/python bench/brain.py [--threads 1 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from importlib import resources
from pathlib import Path

from voicevibe.brain.assets import load_assets
from voicevibe.brain.core import Brain
from voicevibe.brain.llama import LlamaPromptModel, load_llama
from voicevibe.brain.loading import bundled_gguf
from voicevibe.brain.prompting import REPEAT_PENALTY, PromptRequest, completion_text
from voicevibe.brain.schema import MOOD_CHAR, TEXT_CHAR, parse_answer
from voicevibe.config import BrainConfig
from voicevibe.events import Phrase

OUT = Path(__file__).resolve().parent / "RESULTS-brain.md"
WHOLE_ANSWER = ('root ::= char{2,120} "\\", \\"mood\\": \\"" moodchar{1,24} "\\"}"\n'
                f"char ::= {TEXT_CHAR}\nmoodchar ::= {MOOD_CHAR}\n")


def p95(values: list[float]) -> float:
    """95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


class RecordingModel:
    """Wraps the real model to keep each raw answer (for the French-survival count)."""

    def __init__(self, inner: LlamaPromptModel) -> None:
        self.inner, self.name, self.raw = inner, inner.name, ""

    def generate(self, request, should_stop):  # noqa: ANN001, ANN201 - PromptModel protocol
        self.raw = self.inner.generate(request, should_stop)
        return self.raw


def run(threads: int, rounds: int, phrases: list[tuple[str, str]]) -> dict:
    """Measure one thread setting; returns numbers and samples."""
    from llama_cpp import LlamaGrammar

    assets = load_assets()
    config = BrainConfig(model="bundled", n_threads=threads, time_budget_seconds=60.0)
    start = time.perf_counter()
    llm = load_llama(bundled_gguf(), config)
    load_s = time.perf_counter() - start
    model = RecordingModel(LlamaPromptModel(llm, "gemma-3-270m (bundled)", config, assets.examples))
    brain = Brain(model, config, assets)
    brain.warm_up()
    naive_grammar = LlamaGrammar.from_string(WHOLE_ANSWER, verbose=False)
    # Every measured call starts from the same cache: the fixed few-shot text kept, the phrase not seen yet
    # (as in a show); otherwise a reference run after the brain would find the phrase already evaluated.
    fixed = [completion_text(PromptRequest(p, brain.style), assets.examples).encode() for p in ("a", "b")]
    kept = llm.longest_token_prefix(llm.tokenize(fixed[0], special=True), llm.tokenize(fixed[1], special=True))

    def forget_phrase() -> None:
        llm.n_tokens = min(llm.n_tokens, kept)

    bare, naive, total, tokens, samples = [], [], [], [], []
    french_raw = french_final = 0
    sources: dict[str, int] = {}
    for r in range(rounds):
        for lang, text in phrases:
            brain.reset()  # same request every round: a fair comparison with the bare call
            forget_phrase()
            result = brain.step(Phrase(text, 0, 0))
            total.append(result.latency_ms / 1000.0)
            sources[result.reason or "model"] = sources.get(result.reason or "model", 0) + 1
            fields = list(model.inner.decoder.last_fields)
            tokens.append(sum(n for _, n in fields))
            forget_phrase()
            t0 = time.perf_counter()
            for prompt, n in fields:
                llm.create_completion(prompt, max_tokens=n, temperature=config.temperature,
                                      repeat_penalty=REPEAT_PENALTY)
            bare.append(time.perf_counter() - t0)
            forget_phrase()
            t0 = time.perf_counter()
            llm.create_completion(completion_text(PromptRequest(text, brain.style), assets.examples),
                                  max_tokens=config.max_tokens, temperature=config.temperature,
                                  repeat_penalty=REPEAT_PENALTY, grammar=naive_grammar, stop=["\n"])
            naive.append(time.perf_counter() - t0)
            if r == 0:
                try:
                    raw_french = assets.french_words(parse_answer(model.raw).prompt)
                except ValueError:
                    raw_french = []
                if lang == "fr":
                    french_raw += bool(raw_french)
                    french_final += bool(assets.french_words(result.text))
                samples.append((lang, text, result.text, result.mood, result.source, result.reason, raw_french))
    summaries = []  # the slow brain: a summary after every 5 phrases of the sample text
    brain.reset()
    for i, (_, text) in enumerate(phrases):
        brain.step(Phrase(text, float(i), i + 1.0))
        if i % 5 == 4:
            forget_phrase()
            summaries.append(brain.summarize())
    return {"threads": threads, "load_s": load_s, "summaries": summaries, "bare": bare, "naive": naive,
            "total": total, "tokens": tokens,
            "samples": samples, "french_raw": french_raw, "french_final": french_final, "sources": sources,
            "full_passes": model.inner.decoder.full_passes,
            "over_budget": sum(t > BrainConfig().time_budget_seconds for t in total)}


def report(results: list[dict], rounds: int, loads: list[tuple[float, float, float]]) -> str:
    """The markdown report."""
    default_budget = BrainConfig().time_budget_seconds
    load_text = ", ".join(f"{a:.2f} / {b:.2f} / {c:.2f}" for a, b, c in loads)
    lines = [
        "# Brain bench (bundled Gemma 3 270M, llama.cpp CPU)", "",
        f"`bench/brain.py`, {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {rounds} round(s) x 20 phrases (10 EN, 10 FR), temperature "
        f"{BrainConfig().temperature}, one phrase at a time, `OMP_WAIT_POLICY=PASSIVE`.", "",
        "**Shared machine**: 2 cores shared with other agents' builds and tests. Load average (1/5/15 min) "
        f"at the start, between thread settings and at the end: {load_text}. Read ratios more than absolute "
        "times; an Apple-Silicon Mac with Metal is several times faster.", "",
        "| threads | load s | brain median s | brain p95 s | bare median s | overhead (brain / bare, medians) "
        f"| naive grammar call median s | speed-up vs naive | tokens per prompt (median) | over the "
        f"{default_budget:g} s budget |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        mb, mr, mn = statistics.median(r["total"]), statistics.median(r["bare"]), statistics.median(r["naive"])
        lines.append(f"| {r['threads']} | {r['load_s']:.2f} | {mb:.3f} | {p95(r['total']):.3f} | {mr:.3f} | "
                     f"{mb / mr:.3f} | {mn:.3f} | {mn / mb:.2f}x | {statistics.median(r['tokens']):g} | "
                     f"{r['over_budget']} of {len(r['total'])} |")
    first = results[0]
    slow = "; ".join(f"threads={r['threads']}: median "
                     f"{statistics.median(s.latency_ms for s in r['summaries']) / 1e3:.2f} s, "
                     f"max {max(s.latency_ms for s in r['summaries']) / 1e3:.2f} s" for r in results)
    origins = ", ".join(s.source + (f" ({s.reason})" if s.reason else "") for s in first["summaries"])
    lines += ["", "Slow brain (`Brain.summarize`, at most 160 tokens, one summary after every 5 sample phrases): "
              f"{slow}. Sources (threads={first['threads']}): {origins}. It runs only when no phrase waits, "
              "and a phrase interrupts it.", ""]
    lines += ["- **brain**: `Brain.step` end to end (what `ImagePrompt.latency_ms` reports).",
              "- **bare**: `create_completion` without a grammar, non-streamed, on the brain's own prompt text for "
              "each field and for as many tokens as the brain generated: the same llama.cpp work with nothing "
              "around it. The overhead is the grammar checks, the Python decoding loop, the JSON parse and the "
              "prompt checks.",
              "- **naive**: one `create_completion` with a grammar for the whole JSON answer (the brain's previous "
              "design); llama-cpp-python applies the grammar to all 262,144 tokens of Gemma's vocabulary at every "
              "step.",
              f"- Steps where the model's 40 best tokens were all refused by the grammar (whole-vocabulary check): "
              f"{first['full_passes']} (threads={first['threads']}).", "",
              f"Outcomes (threads={first['threads']}, all rounds): " + ", ".join(
                  f"{k}: {v}" for k, v in sorted(first["sources"].items())), "",
              f"French survival (threads={first['threads']}, first round, 10 French phrases): the model's raw "
              f"prompt kept French words for {first['french_raw']} of 10; after the lexicon repair and checks, "
              f"{first['french_final']} of 10 final prompts contain French.", "",
              "| lang | phrase | prompt | mood | source | French in the raw prompt |", "|---|---|---|---|---|---|"]
    for lang, text, prompt, mood, source, reason, raw_french in first["samples"]:
        src = source + (f" ({reason})" if reason else "")
        lines.append(f"| {lang} | {text} | {prompt} | {mood} | {src} | {', '.join(raw_french) or '-'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the bench and write bench/RESULTS-brain.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    data = json.loads((resources.files("voicevibe") / "assets" / "sample_phrases.json").read_text("utf-8"))
    phrases = [("en", t) for t in data["english"]] + [("fr", t) for t in data["french"]]
    loads = [os.getloadavg()]
    results = []
    for n in args.threads:
        results.append(run(n, args.rounds, phrases))
        loads.append(os.getloadavg())
    OUT.write_text(report(results, args.rounds, loads), encoding="utf-8")
    print(OUT.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
