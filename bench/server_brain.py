"""Server brain bench: `Brain.step` through `python -m llama_cpp.server` on the loopback against the same GGUF
in process, same phrases, same run. Writes bench/RESULTS-server-brain.md.

Both sides run the bundled Gemma 3 270M Q4_K_M with the brain's default settings (brain.n_threads
threads, the 4 s time budget, the cinematic preset): the local brain (brain.llama.LlamaPromptModel, its
field-by-field decoding) and the server brain (brain.server.ServerPromptModel) with
`brain.server_output` as configured (auto = text: the same few-shot text on /v1/completions, the
scene and mood as plain text up to a stop sequence, the JSON written by the brain). The server
runs with the same thread count and `--logits_all false` (llama-cpp-python's server computes the
logits of every prompt token by default: Gemma's 262k-token output layer made the 40 new prompt
tokens of each phrase cost 0.4 s). For each phrase the two sides run one after the other, the
order alternating, so they see the same machine load. The phrases: the package's sample phrases
and every phrase of bench/fidelity_scenes.json (English and French).

For comparison the server brain is also run, on the first few phrases, the way it asked before
(`--schema N`): the chat message with the whole answer held to the JSON schema (json_object), on
the same server, with a 60 s budget so its time is measured rather than cut at 4 s.

    flock /tmp/voicevibe-heavy.lock .venv/bin/python bench/server_brain.py [--schema 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from importlib import resources
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.llamaserver import LlamaServer  # noqa: E402  (the tests' server helper)
from voicevibe.brain.assets import load_assets  # noqa: E402
from voicevibe.brain.core import Brain  # noqa: E402
from voicevibe.brain.llama import LlamaPromptModel, load_llama  # noqa: E402
from voicevibe.brain.loading import bundled_gguf  # noqa: E402
from voicevibe.brain.server import ServerPromptModel  # noqa: E402
from voicevibe.config import BrainConfig  # noqa: E402
from voicevibe.events import ImagePrompt, Phrase  # noqa: E402

OUT = Path(__file__).resolve().parent / "RESULTS-server-brain.md"
NOTES = """
## Notes

- What changed: the server brain asked for the whole JSON answer under a schema grammar, which
  llama-cpp-python's server checks against all 262k tokens of Gemma's vocabulary at every step
  (10.7 s median at a load of 7-10 in the previous run of this file, 3.1 s above at a load of 2);
  it now sends the local brain's own few-shot text to /v1/completions and takes the scene and mood
  as plain text up to a stop sequence (`brain.server_output = text`, what `auto` means now).
- `--logits_all false` on llama-cpp-python's server: its default (true) computes the output layer
  for every prompt token; with Gemma's 262k-token vocabulary the ~40 new prompt tokens of a phrase
  cost 0.4 s more. With the default, the server brain's median was 760 ms against 476 ms in
  process (1.6x, 6 scenes, 00:00 UTC); with `--logits_all false`, 566 ms against 456 ms.
- What remains between the two (about 0.1 s): llama-cpp-python's server samples in Python (its
  repeat penalty, top-k/top-p/min-p chain and stop-string checks at every token), plus HTTP and
  streaming; the earlier runs of this bench measured the HTTP part alone at 11-21 ms.
- llama.cpp's own C++ `llama-server` (what Ollama and LM Studio run) was not built: compiling the
  sources vendored in llama-cpp-python's sdist takes too long on these 2 shared cores today.
"""  # written after the tables (what the numbers rest on; edit when they change)
SCENES = Path(__file__).resolve().parent / "fidelity_scenes.json"
SPACING_SECONDS = 40.0


def phrases() -> list[str]:
    samples = json.loads((resources.files("voicevibe") / "assets" / "sample_phrases.json").read_text("utf-8"))
    scenes = json.loads(SCENES.read_text(encoding="utf-8"))["scenes"]
    return ([p for pair in zip(samples["english"], samples["french"]) for p in pair]
            + [s[lang] for s in scenes for lang in ("en", "fr")])


def step(brain: Brain, text: str, i: int) -> ImagePrompt:
    result = brain.step(Phrase(text, i * SPACING_SECONDS, i * SPACING_SECONDS + 1.0, "end"))
    assert isinstance(result, ImagePrompt), text
    return result


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    """Run the bench and write bench/RESULTS-server-brain.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phrases", type=int, default=0, help="only the first N phrases (0: all)")
    parser.add_argument("--schema", type=int, default=4, help="phrases asked the old way (JSON schema), for reference")
    args = parser.parse_args()
    texts = phrases()[:args.phrases or None]
    assets = load_assets()
    config = BrainConfig(model="bundled")
    threads = str(config.n_threads)
    loads = [os.getloadavg()]
    server = LlamaServer(Path("/tmp") / f"server-brain-bench-{os.getpid()}.log",
                         extra=("--n_threads", threads, "--n_threads_batch", threads, "--logits_all", "false")).start()
    try:
        remote_config = BrainConfig(model=server.url)
        remote = Brain(ServerPromptModel(remote_config, assets.examples), remote_config, assets)
        local = Brain(LlamaPromptModel(load_llama(bundled_gguf(), config), "local", config, assets.examples),
                      config, assets)
        remote.warm_up()
        local.warm_up()
        rows = []
        for i, text in enumerate(texts):
            if i % 2:
                here = step(local, text, i)
                there = step(remote, text, i)
            else:
                there = step(remote, text, i)
                here = step(local, text, i)
            rows.append((text, there, here))
            print(f"{there.latency_ms:6.0f} {there.source:8s} {here.latency_ms:6.0f} {here.source:8s} {text}",
                  flush=True)
        loads.append(os.getloadavg())
        schema_config = BrainConfig(model=server.url, server_output="json_object", time_budget_seconds=60.0)
        schema = Brain(ServerPromptModel(schema_config, assets.examples), schema_config, assets)
        schema.warm_up()
        old = [step(schema, text, i) for i, text in enumerate(texts[:args.schema])]
        for r in old:
            print(f"schema {r.latency_ms:6.0f} {r.source} {r.phrase}", flush=True)
        loads.append(os.getloadavg())
    finally:
        server.kill()
    OUT.write_text(report(rows, old, loads, config), encoding="utf-8")
    print(f"wrote {OUT}")


def report(rows: list[tuple[str, ImagePrompt, ImagePrompt]], old: list[ImagePrompt],
           loads: list[tuple[float, float, float]], config: BrainConfig) -> str:
    there = [r[1].latency_ms for r in rows]
    here = [r[2].latency_ms for r in rows]
    answered = sum(r[1].source == "model" for r in rows)
    local_answered = sum(r[2].source == "model" for r in rows)
    same = sum(r[1].text == r[2].text for r in rows)
    ratio = statistics.median(there) / statistics.median(here)
    ok = ratio <= 1.3 and answered >= 0.95 * len(rows)
    load = " -> ".join(f"{x[0]:.1f}" for x in loads)
    lines = [
        "# Server brain: python -m llama_cpp.server on the loopback vs the same GGUF in process",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()}; shared with other engineers' work (1-minute load average {load}). "
        f"Model: the bundled Gemma 3 270M Q4_K_M, {config.n_threads} thread(s) on both sides, "
        f"the default {config.time_budget_seconds:g} s time budget. Written by `bench/server_brain.py` "
        f"(method in its docstring) on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"## Brain.step, {len(rows)} phrases (English and French), interleaved",
        "",
        "| | median ms | p95 ms | max ms | model answers (within the budget) |",
        "|---|---|---|---|---|",
        f"| server brain (server_output text) | **{statistics.median(there):.0f}** | {p95(there):.0f} | "
        f"{max(there):.0f} | **{answered} of {len(rows)} ({100.0 * answered / len(rows):.0f}%)** |",
        f"| local brain (in process) | **{statistics.median(here):.0f}** | {p95(here):.0f} | {max(here):.0f} | "
        f"{local_answered} of {len(rows)} |",
        "",
        f"Server median / local median: **{ratio:.2f}x** (goal: at most 1.3x, with at least 95% of phrases "
        f"answered within the budget: **{'met' if ok else 'NOT met'}**). The same prompt on both sides: "
        f"{same} of {len(rows)}.",
        "",
    ]
    if old:
        lines += [
            f"## For reference: the server asked the old way, {len(old)} phrases",
            "",
            "The chat message with the whole answer held to the JSON schema (server_output json_object), on the "
            "same server, budget raised to 60 s so the time is measured:",
            "",
            "| phrase | ms | source |",
            "|---|---|---|",
            *[f"| {r.phrase} | {r.latency_ms:.0f} | {r.source} |" for r in old],
            f"| **median** | **{statistics.median(r.latency_ms for r in old):.0f}** | |",
            "",
        ]
    lines += [
        "## Every phrase",
        "",
        "| phrase | server ms | local ms | source (server/local) | same prompt |",
        "|---|---|---|---|---|",
        *[f"| {t} | {a.latency_ms:.0f} | {b.latency_ms:.0f} | {a.source}/{b.source} | "
          f"{'yes' if a.text == b.text else 'no: ' + a.text + ' / ' + b.text} |" for t, a, b in rows],
        "",
    ]
    return "\n".join(lines) + NOTES


if __name__ == "__main__":
    main()
