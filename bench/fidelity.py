"""Fidelity bench: does the prompt show what was said, in English and in French, from each brain?

Runs the bilingual scene set (bench/fidelity_scenes.json: each scene said in English and in
French, with the key concepts a picture must show, synonyms allowed) through `Brain.step`
for each brain, as a show: one brain per language, the scenes in order, 40 s apart (beyond
the 30 s history window, so each scene stands on its own), the default settings (4 s time
budget, cinematic preset). What the audience sees is measured, fallback prompts included.

Brains:
- local: the bundled Gemma 3 270M in process (brain.llama.LlamaPromptModel), brain.n_threads as configured;
- server: the same GGUF through `python -m llama_cpp.server` on the loopback (brain.server.ServerPromptModel),
  the server given the same thread count;
- 1b: the default model (brain.model's GGUF) in process, only when it is in the hub cache (never downloaded).

Per brain and language, for each half of the scene set (tuning / held out):
- retention: the share of the scenes' key concepts found in the prompt (a concept is found when one of
  its words is in the prompt as a whole word, or its plural);
- English only: the share of prompts with no French left (no lexicon French word, no accented letter,
  no word of the French phrase that is not also in the scene's English phrase);
- CLIP tokens: brain.fallback.clip_token_estimate, an upper bound on CLIP's BPE count (no CLIP tokenizer
  installs without torch; see that module's docstring), median and max;
- variety: the closing style phrase of each prompt (its last comma-separated part before the preset's
  light) and how many of the show's prompts the most frequent one closes;
- latency: median and p95 of ImagePrompt.latency_ms; the share answered by the model.

    flock /tmp/voicevibe-heavy.lock .venv/bin/python bench/fidelity.py run --label after --out runs.json
    .venv/bin/python bench/fidelity.py report before.json after.json > tables.md

`run` uses only the brain's public API, so it also runs against an older checkout
(PYTHONPATH=/tmp/vv-before) for before/after numbers in one sitting.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.llamaserver import LlamaServer  # noqa: E402  (the tests' server helper)
from voicevibe.brain.assets import Assets, load_assets, normalize, words_of  # noqa: E402
from voicevibe.brain.core import Brain  # noqa: E402
from voicevibe.brain.fallback import clip_token_estimate  # noqa: E402
from voicevibe.config import BrainConfig  # noqa: E402
from voicevibe.events import ImagePrompt, Phrase  # noqa: E402

SCENES = Path(__file__).resolve().parent / "fidelity_scenes.json"
SPACING_SECONDS = 40.0
LANGUAGES = ("en", "fr")


def load_scenes(limit: int = 0, path: Path = SCENES) -> list[dict[str, Any]]:
    """The scene set; with `limit`, the first limit/2 of each half (a development subset)."""
    scenes = json.loads(path.read_text(encoding="utf-8"))["scenes"]
    if not limit:
        return scenes
    tuning = [s for s in scenes if not s["held_out"]][:(limit + 1) // 2]
    held = [s for s in scenes if s["held_out"]][:limit // 2]
    return tuning + held


def found(concept: list[str], prompt: str) -> bool:
    """True when one of the concept's words (or phrases) is in the prompt, whole, singular or plural."""
    words = set(w.lower() for w in words_of(prompt))
    text = " ".join(w.lower() for w in words_of(prompt))
    for synonym in concept:
        if " " in synonym:
            if f" {synonym} " in f" {text} ":
                return True
        elif {synonym, synonym + "s", synonym + "es"} & words:
            return True
    return False


def french_left(prompt: str, scene: dict[str, Any], assets: Assets) -> list[str]:
    """French words in the prompt: lexicon French, accented letters, words copied from the French phrase."""
    english = {w.lower() for w in words_of(scene["en"])}
    said = {w.lower() for w in words_of(scene["fr"]) if len(w) >= 4} - english
    left = list(assets.french_words(prompt))
    for word in words_of(prompt):
        if word.lower() in said or any(unicodedata.combining(c) for c in unicodedata.normalize("NFD", word)):
            left.append(word)
    return sorted(set(left))


def closing_phrase(prompt: str, light: str) -> str:
    """The prompt's last comma-separated part before the preset's light (what closes its own look)."""
    body = prompt[:-len(light)] if prompt.endswith(light) else prompt
    parts = [p.strip() for p in body.split(",") if p.strip()]
    return normalize(parts[-1]) if len(parts) > 1 else ""


def one_show(brain: Brain, scenes: list[dict[str, Any]], language: str) -> list[dict[str, Any]]:
    rows = []
    brain.warm_up()
    for i, scene in enumerate(scenes):
        t = i * SPACING_SECONDS
        result = brain.step(Phrase(scene[language], t, t + 2.0, "end"))
        assert isinstance(result, ImagePrompt), f"no prompt for {scene[language]!r}"
        rows.append({"id": scene["id"], "held_out": scene["held_out"], "phrase": scene[language],
                     "prompt": result.text, "source": result.source, "reason": result.reason,
                     "ms": result.latency_ms})
        print(f"  {result.latency_ms:6.0f} ms {result.source:8s} {scene[language]!r} -> {result.text}", flush=True)
    return rows


def local_brain(config: BrainConfig, assets: Assets) -> Any:
    from voicevibe.brain.llama import LlamaPromptModel, load_llama
    from voicevibe.brain.loading import bundled_gguf

    return LlamaPromptModel(load_llama(bundled_gguf(), config), "gemma-3-270m (bundled)", config, assets.examples)


def default_1b(assets: Assets) -> tuple[Any, str]:
    """The default model in process when it is in the hub cache, else (None, why not)."""
    from voicevibe.brain.llama import LlamaPromptModel, load_llama
    from voicevibe.hub import ModelError, fetch_file

    config = BrainConfig()
    try:
        path = fetch_file(config.model, config.model_file, allow_download=False)
    except (ModelError, TypeError) as e:
        return None, f"{config.model}/{config.model_file} is not on disk ({type(e).__name__}): column skipped"
    return LlamaPromptModel(load_llama(Path(path), config), config.model_file, config, assets.examples), ""


def run(args: argparse.Namespace) -> None:
    scenes = load_scenes(args.scenes, Path(args.scene_file))
    assets = load_assets()
    config = BrainConfig(model="bundled")
    results: dict[str, Any] = {"label": args.label, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                               "load": [os.getloadavg()], "brains": {}, "notes": []}
    for name in args.brains.split(","):
        if name == "local":
            model, note = local_brain(config, assets), ""
            brain_config = config
        elif name == "server":
            threads = str(config.n_threads)
            server = LlamaServer(Path("/tmp") / f"fidelity-server-{os.getpid()}.log",
                                 extra=("--n_threads", threads, "--n_threads_batch", threads,
                                        "--logits_all", "false")).start()
            from voicevibe.brain.server import ServerPromptModel

            brain_config = BrainConfig(model=server.url)
            model, note = ServerPromptModel(brain_config, assets.examples), ""
        elif name == "1b":
            model, note = default_1b(assets)
            brain_config = BrainConfig()
        else:
            raise SystemExit(f"unknown brain {name!r}: local, server or 1b")
        if model is None:
            print(note, flush=True)
            results["notes"].append(f"{name}: {note}")
            continue
        try:
            results["brains"][name] = {lang: one_show(Brain(model, brain_config, assets), scenes, lang)
                                       for lang in LANGUAGES}
        finally:
            if name == "server":
                server.kill()
    results["load"].append(os.getloadavg())
    Path(args.out).write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"wrote {args.out}")


def measures(rows: list[dict[str, Any]], scenes: dict[str, dict[str, Any]], assets: Assets) -> dict[str, Any]:
    kept = total = english = 0
    for row in rows:
        scene = scenes[row["id"]]
        hits = [found(c, row["prompt"]) for c in scene["concepts"]]
        kept, total = kept + sum(hits), total + len(hits)
        english += not french_left(row["prompt"], scene, assets)
    tokens = [clip_token_estimate(r["prompt"]) for r in rows]
    ms = sorted(r["ms"] for r in rows)
    return {"retention": 100.0 * kept / total, "english": 100.0 * english / len(rows),
            "tokens_median": statistics.median(tokens), "tokens_max": max(tokens),
            "ms_median": statistics.median(ms), "ms_p95": ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))],
            "model": 100.0 * sum(r["source"] == "model" for r in rows) / len(rows), "n": len(rows)}


def report(args: argparse.Namespace) -> None:
    assets = load_assets()
    scenes = {s["id"]: s for s in load_scenes(0, Path(args.scene_file))}
    light = assets.style("cinematic").light
    out = ["| run | brain | lang | half | retention | English only | CLIP tokens med/max | closing phrase max share "
           "| model answers | median ms | p95 ms |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    misses = []
    for path in args.runs:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        for brain, languages in data["brains"].items():
            for lang, rows in languages.items():
                closings = Counter(closing_phrase(r["prompt"], light) for r in rows if r["source"] == "model")
                phrase, count = closings.most_common(1)[0] if closings else ("", 0)
                share = f"{100.0 * count / len(rows):.0f}% ({phrase!r})" if phrase else "-"
                for half, chosen in (("tuning", False), ("held out", True), ("all", None)):
                    part = [r for r in rows if chosen is None or r["held_out"] == chosen]
                    if not part:
                        continue
                    m = measures(part, scenes, assets)
                    out.append(f"| {data['label']} | {brain} | {lang} | {half} ({m['n']}) | "
                               f"**{m['retention']:.0f}%** | "
                               f"{m['english']:.0f}% | {m['tokens_median']:.0f}/{m['tokens_max']} | "
                               f"{share if half == 'all' else ''} | {m['model']:.0f}% | {m['ms_median']:.0f} | "
                               f"{m['ms_p95']:.0f} |")
                for r in rows:
                    lost = [c[0] for c in scenes[r["id"]]["concepts"] if not found(c, r["prompt"])]
                    if lost and args.misses:
                        why = f"{r['source']}{': ' + r['reason'] if r['reason'] else ''}"
                        misses.append(f"- {data['label']} {brain} {lang}: {r['phrase']!r} -> {r['prompt']!r} "
                                      f"(lost: {', '.join(lost)}; {why})")
        for note in data["notes"]:
            out.append(f"\n{data['label']}: {note}")
        load = data["load"]
        out.append(f"\n{data['label']}: started {data['started']}, load average {load[0][0]:.1f} -> {load[-1][0]:.1f}")
    print("\n".join(out + ([""] + misses if misses else [])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the scenes through the brains; write the prompts as JSON")
    r.add_argument("--label", default="after")
    r.add_argument("--out", required=True)
    r.add_argument("--brains", default="local,server,1b", help="comma-separated: local, server, 1b")
    r.add_argument("--scenes", type=int, default=0, help="a subset: this many scenes, half of each half")
    r.add_argument("--scene-file", default=str(SCENES), help="another scene set (the fresh check)")
    p = sub.add_parser("report", help="tables from run files")
    p.add_argument("runs", nargs="+")
    p.add_argument("--misses", action="store_true", help="list every prompt that lost a concept")
    p.add_argument("--scene-file", default=str(SCENES), help="the scene set the runs used")
    args = parser.parse_args()
    run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
