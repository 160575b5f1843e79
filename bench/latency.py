"""Phrase end -> OSC datagram: how much of the wait is the model, and how much is the pipeline.

    .venv/bin/python bench/latency.py [--phrases N] [--out FILE]

Runs the real `Pipeline` (models in their worker processes) twice with OSC going to a local
UDP receiver:
1. typed phrases (the script path) with the real bundled Gemma 3 270M brain model;
   (the model is loaded before the first phrase; each phrase waits for the previous prompt);
2. a speech rehearsal (generated tiny STT checkpoint, espeak-ng speech) with the fallback brain,
   where the phrase closes on the speech worker's reader thread in the main process.
For every prompt: queue wait (phrase closed -> brain took it), model compute (brain start -> end),
dispatch (brain end -> datagram received by the receiver). Pipeline overhead = total - compute
(goal: under 15 ms).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support.speech import write_speech  # noqa: E402
from voicevibe.config_files import load_config  # noqa: E402
from voicevibe.events import ImagePrompt, SayText
from voicevibe.runtime.controls import Controls  # noqa: E402
from voicevibe.runtime.engines import Engines  # noqa: E402
from voicevibe.runtime.pipeline import Pipeline  # noqa: E402
from voicevibe.testing.peer import OscPeer  # noqa: E402
from voicevibe.workers.messages import SttStepped

PHRASES = [
    "the moon rises over a silent harbour", "un cheval blanc court dans la neige",
    "a train disappears into the desert", "la ville dort sous la pluie", "red lanterns float on the river",
    "une forêt de verre sous un ciel violet", "an old man feeds pigeons at dawn", "le phare brille dans la tempête",
    "children run through a field of sunflowers", "des baleines chantent sous la glace",
]


def arrival_of(peer: OscPeer, prompt: ImagePrompt) -> float:
    """When the datagram carrying this prompt's text arrived."""
    needle = prompt.text.encode("utf-8")
    return next(t for t, data in peer.datagrams if needle in data and t >= prompt.brain_end)


def measure(config_layers: dict, *, script: list[str] | None = None, input_spec: str | None = None,
            hops: list[float] | None = None) -> list[dict[str, float]]:
    """Run one show; per prompt: queue, compute, dispatch and total times (seconds)."""
    receiver = OscPeer().start()
    layers = {**config_layers, "osc": {"targets": f"127.0.0.1:{receiver.port}", "preset": "vocevibe"}}
    config = load_config(overrides=[layers], include_defaults_files=False)
    seen: list[object] = []
    engines = Engines(config)
    if hops is not None:  # the speech worker's events: sent (worker) -> received (main)
        real = engines.stt.worker.on_message

        def on_message(message: object) -> None:
            if isinstance(message, SttStepped) and message.events:
                hops.append(time.monotonic() - message.sent_at)
            real(message)

        engines.stt.worker.on_message = on_message
    engines.start()
    controls = Controls(config, engines)
    if script is not None:
        # Typed phrases: the models are loaded before the show (as when the window opens), then one
        # phrase at a time, each after the previous prompt went out.
        while not engines.brain.worker.ready:
            time.sleep(0.05)
        pipeline = Pipeline(config, controls=controls, script=[])
        pipeline.start()
        for line in script:
            pipeline.apply(SayText(line))
            pipeline.wait(600)
    else:
        while not engines.stt.ready:
            time.sleep(0.05)
        pipeline = Pipeline(config, controls=controls, input_spec=input_spec)
        pipeline.start()
        pipeline.wait(1800)
    pipeline.stop()
    controls.close()
    engines.close()
    time.sleep(0.2)
    receiver.close()
    while not pipeline.events.empty():
        seen.append(pipeline.events.get_nowait())
    prompts = [item for item in seen if isinstance(item, ImagePrompt)]
    rows = []
    for p in prompts:
        arrived = arrival_of(receiver, p)
        rows.append({"queue": p.brain_start - p.phrase_closed_at, "compute": p.brain_end - p.brain_start,
                     "dispatch": arrived - p.brain_end, "total": arrived - p.phrase_closed_at})
    return rows


def table(title: str, rows: list[dict[str, float]]) -> list[str]:
    def stat(key: str, q: float) -> str:
        return f"{np.percentile([r[key] for r in rows], q) * 1000:.2f}"

    overhead = [r["total"] - r["compute"] for r in rows]
    lines = [f"### {title} ({len(rows)} prompts)", "",
             "| stage | median ms | p95 ms | max ms |", "|---|---|---|---|"]
    for key, name in (("queue", "phrase closed -> brain takes it"), ("compute", "model compute (brain)"),
                      ("dispatch", "brain done -> datagram received"), ("total", "phrase closed -> received")):
        lines.append(f"| {name} | {stat(key, 50)} | {stat(key, 95)} | {stat(key, 100)} |")
    lines.append(f"| **pipeline overhead** (total - compute) | {np.median(overhead) * 1000:.2f} | "
                 f"{np.percentile(overhead, 95) * 1000:.2f} | {max(overhead) * 1000:.2f} |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phrases", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS-latency.md")
    args = parser.parse_args()
    load = os.getloadavg()
    os.environ.setdefault("XDG_STATE_HOME", "/tmp/voicevibe-bench-state")
    log_dir = {"log_dir": "/tmp/voicevibe-bench-log"}

    typed = measure({"brain": {"model": "bundled"}, "session": log_dir}, script=PHRASES[:args.phrases])
    from voicevibe.testing.checkpoint import write_checkpoint

    work = Path("/tmp/voicevibe-bench-latency")
    ckpt = work / "stt-tiny"
    if not (ckpt / "config.json").is_file():
        ckpt.mkdir(parents=True, exist_ok=True)
        write_checkpoint(ckpt, "tiny", vad=True, seed=0)
    wav = write_speech(work / "speech.wav")
    hops: list[float] = []
    spoken = measure({"stt": {"model": str(ckpt)}, "audio": {"realtime": False}, "session": log_dir,
                      "brain": {"model": "none"}}, input_spec=str(wav), hops=hops)

    load_after = os.getloadavg()
    lines = ["# Phrase end -> OSC latency", "",
             f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"load average (1 min) {load[0]:.2f} before the run, {load_after[0]:.2f} after "
             "(a shared machine). `python bench/latency.py`.", "",
             "The pipeline overhead is everything but the model's own compute: the phrase waiting for the",
             "brain thread, the hand-over to the dispatch thread, building and sending the datagrams, and",
             "the receiver's wake-up. Goal: under 15 ms.", ""]
    lines += table("Typed phrases, real bundled Gemma 3 270M", typed)
    lines += table("Speech rehearsal (tiny STT checkpoint), fallback brain: the phrase closes on the speech "
                   "worker's reader thread", spoken)
    lines += ["The speech worker's events cross a pipe before the phrase closes: sent by the worker -> "
              f"received by the main process, {len(hops)} messages: median {np.median(hops) * 1000:.2f} ms, p95 "
              f"{np.percentile(hops, 95) * 1000:.2f} ms, max {max(hops) * 1000:.2f} ms (add it to the rehearsal's "
              "overhead for speech end -> OSC).", ""]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
