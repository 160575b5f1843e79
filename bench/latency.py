"""Phrase end -> OSC datagram: how much of the wait is the model, and how much is the pipeline.

    .venv/bin/python bench/latency.py [--phrases N] [--out FILE]

Runs the real `Pipeline` twice with OSC going to a local UDP receiver:
1. typed phrases (the script path) with the real bundled Gemma 3 270M brain model;
   (the model is loaded before the first phrase; each phrase waits for the previous prompt);
2. a speech rehearsal (generated tiny STT checkpoint, espeak-ng speech) with the fallback brain,
   where the phrase closes inside the STT thread.
For every prompt: queue wait (phrase closed -> brain took it), model compute (brain start -> end),
dispatch (brain end -> datagram received by the receiver). Pipeline overhead = total - compute
(goal: under 15 ms).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from speech import write_speech  # noqa: E402

from voicevibe.app import Pipeline  # noqa: E402
from voicevibe.brain import LoadedModel  # noqa: E402
from voicevibe.config import load_config  # noqa: E402
from voicevibe.events import ImagePrompt, Status  # noqa: E402

PHRASES = [
    "the moon rises over a silent harbour", "un cheval blanc court dans la neige",
    "a train disappears into the desert", "la ville dort sous la pluie", "red lanterns float on the river",
    "une forêt de verre sous un ciel violet", "an old man feeds pigeons at dawn", "le phare brille dans la tempête",
    "children run through a field of sunflowers", "des baleines chantent sous la glace",
]


class Receiver:
    """Local UDP receiver stamping each datagram's arrival with time.monotonic()."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.arrivals: list[tuple[float, bytes]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="receiver")
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            self.arrivals.append((time.monotonic(), data))

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


def arrival_of(receiver: Receiver, prompt: ImagePrompt) -> float:
    """When the datagram carrying this prompt's text arrived."""
    needle = prompt.text.encode("utf-8")
    return next(t for t, data in receiver.arrivals if needle in data and t >= prompt.brain_end)


def measure(config_layers: dict, *, script: list[str] | None = None, input_spec: str | None = None,
            brain_loader=None) -> list[dict[str, float]]:
    receiver = Receiver()
    layers = {**config_layers, "osc": {"targets": f"127.0.0.1:{receiver.port}", "preset": "vocevibe"}}
    config = load_config(overrides=[layers], include_defaults_files=False)
    seen: list[object] = []
    if script is not None:
        # Typed phrases: load the brain first (a show starts once the models are ready), then one
        # phrase at a time, each after the previous prompt went out.
        pipeline = Pipeline(config, script=[], brain_loader=brain_loader)
        pipeline.start()
        while not any(isinstance(e, Status) and e.stage == "brain" and "model" in e.message for e in seen):
            seen.append(pipeline.events.get(timeout=600))
        for line in script:
            pipeline.type_text(line)
            pipeline.wait(600)
    else:
        pipeline = Pipeline(config, input_spec=input_spec, brain_loader=brain_loader)
        pipeline.start()
        pipeline.wait(1800)
    pipeline.stop()
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
    spoken = measure({"stt": {"model": str(ckpt)}, "audio": {"realtime": False}, "session": log_dir},
                     input_spec=str(wav), brain_loader=lambda c, a: LoadedModel(None))

    load_after = os.getloadavg()
    lines = ["# Phrase end -> OSC latency", "",
             f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"load average (1 min) {load[0]:.2f} before the run, {load_after[0]:.2f} after "
             "(a shared machine). `python bench/latency.py`.", "",
             "The pipeline overhead is everything but the model's own compute: the phrase waiting for the",
             "brain thread, the hand-over to the dispatch thread, building and sending the datagrams, and",
             "the receiver's wake-up. Goal: under 15 ms.", ""]
    lines += table("Typed phrases, real bundled Gemma 3 270M", typed)
    lines += table("Speech rehearsal (tiny STT checkpoint), fallback brain: the phrase closes in the STT thread",
                   spoken)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
