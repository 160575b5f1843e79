"""VoiceVibe benchmarks: one command runs them all, results written to bench/RESULTS.md.

    .venv/bin/python bench/run.py [--quick] [--skip-full] [--skip-soak] [--skip-brain]

- STT engine vs Kyutai's reference loop on the same checkpoint and audio, interleaved
  block by block so both see the same machine load (goal: ratio <= 1.03).
- Cost of the audio callback (goal: p99 < 0.4 ms) and of the DSP per block.
- Per-step time of the full-size (1B, random weights) checkpoint in bf16, f32, q8 and q4.
- Startup to listening (cached full-size checkpoint) vs the reference script's load time;
  peak memory with the full STT model and the brain model in one process (bench/startup.py).
- Sub-benchmarks, each run as its own process and linked: phrase end -> OSC (latency.py),
  brain vs bare llama.cpp (brain.py), session log (session.py), the 3-hour soak (soak.py).
Checkpoints are generated locally (no network) into ~/.cache/voicevibe/bench.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support.speech import write_speech  # noqa: E402
from voicevibe.audio import FileSource, MicSource  # noqa: E402
from voicevibe.config import BLOCK, DspConfig, SttConfig  # noqa: E402
from voicevibe.dsp import Dsp  # noqa: E402
from voicevibe.hub import locate_stt  # noqa: E402
from voicevibe.speech.engine import SttEngine, load_model  # noqa: E402
from voicevibe.testing.checkpoint import quantized_lm_weights, write_checkpoint  # noqa: E402
from voicevibe.testing.reference import ReferenceLoop, load_reference  # noqa: E402

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "voicevibe" / "bench"
RESULTS = ROOT / "bench" / "RESULTS.md"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def checkpoint(size: str, vad: bool) -> Path:
    """A generated checkpoint, reused across runs (it is seeded, so always the same)."""
    folder = CACHE / f"stt-{size}{'-vad' if vad else ''}"
    if not (folder / "config.json").is_file():
        print(f"generating the {size} checkpoint in {folder} ...", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        write_checkpoint(folder, size, vad=vad, seed=0, quantize=8 if size == "full" else None)
    return folder


def q4_weights(folder: Path) -> str:
    """model.q4.safetensors next to the full checkpoint, quantized from its weights once."""
    out = folder / "model.q4.safetensors"
    if not out.is_file():
        import json

        import mlx.core as mx

        print("quantizing the full checkpoint to q4 ...", flush=True)
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        mx.save_safetensors(str(out), quantized_lm_weights(cfg, mx.load(str(folder / "model.safetensors")), 4))
    return out.name


def sub_bench(script: str, *args: str) -> str:
    """Run another bench script as its own process; 'ok' or why it failed."""
    print(f"bench/{script} {' '.join(args)} ...", flush=True)
    t0 = time.perf_counter()
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    took = f"{(time.perf_counter() - t0) / 60:.1f} min"
    if result.returncode == 0:
        return f"ok ({took})"
    tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
    return f"**exit {result.returncode}** ({took}): {tail[0][:200]}"


def speech_blocks(n: int) -> list[np.ndarray]:
    """n blocks of espeak speech with pauses, looped."""
    with tempfile.TemporaryDirectory() as tmp:
        blocks = list(FileSource(write_speech(Path(tmp) / "speech.wav"), realtime=False).blocks())
    return [blocks[i % len(blocks)] for i in range(n)]


def stt_files(folder: Path, lm_name: str = "model.safetensors"):
    """The checkpoint's files with a chosen LM weights file (the full one also has a q8 file)."""
    return dataclasses.replace(locate_stt(str(folder)), lm=folder / lm_name)


def engine_vs_reference(folder: Path, dtype: str, n_blocks: int) -> dict:
    """Time per block of SttEngine.step and the reference loop's step, interleaved."""
    files = stt_files(folder)
    engine = SttEngine(load_model(files, dtype), dataclasses.replace(SttConfig(), dtype=dtype))
    reference = ReferenceLoop(files, load_reference(files, dtype))
    blocks = speech_blocks(n_blocks)
    warm = min(10, n_blocks // 5)
    ours, theirs = [], []
    for i, block in enumerate(blocks):
        first, second = (engine.step, reference.step) if i % 2 else (reference.step, engine.step)
        t0 = time.perf_counter()
        first(block)
        t1 = time.perf_counter()
        second(block)
        t2 = time.perf_counter()
        a, b = (t1 - t0, t2 - t1) if i % 2 else (t2 - t1, t1 - t0)
        if i >= warm:
            ours.append(a)
            theirs.append(b)
    del engine, reference
    gc.collect()
    return {"blocks": len(ours), "engine_ms": 1e3 * float(np.median(ours)),
            "reference_ms": 1e3 * float(np.median(theirs)),
            "engine_mean_ms": 1e3 * float(np.mean(ours)), "reference_mean_ms": 1e3 * float(np.mean(theirs)),
            "ratio_median": float(np.median(ours) / np.median(theirs)),
            "ratio_total": float(np.sum(ours) / np.sum(theirs))}


def callback_cost(n: int) -> dict:
    """The PortAudio callback's own cost, called directly with a device-sized block."""
    mic = MicSource.__new__(MicSource)  # no device needed to time the callback body
    import queue

    mic._queue, mic._column, mic.dropped_blocks, mic.status_events = queue.Queue(64), 0, 0, 0
    indata = np.random.default_rng(0).normal(0, 0.1, (BLOCK, 2)).astype(np.float32)
    times = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        mic._callback(indata, BLOCK, None, None)
        times.append((time.perf_counter_ns() - t0) / 1e6)
        if mic._queue.full():
            while not mic._queue.empty():
                mic._queue.get_nowait()
    return {"calls": n, "p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99),
            "max_ms": max(times)}


def dsp_cost(n: int) -> dict:
    """DSP per 1920-sample block on speech."""
    dsp = Dsp(DspConfig())
    blocks = speech_blocks(n)
    times = []
    for block in blocks:
        t0 = time.perf_counter_ns()
        dsp.process(block)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return {"blocks": n, "p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99)}


def full_step_times(folder: Path, dtype: str, lm_name: str, steps: int) -> dict:
    """Per-step time of the full-size LM (engine path, Mimi included)."""
    files = stt_files(folder, lm_name)
    t0 = time.perf_counter()
    engine = SttEngine(load_model(files, dtype), dataclasses.replace(SttConfig(), dtype=dtype))
    load_s = time.perf_counter() - t0
    blocks = speech_blocks(steps + 2)
    times = []
    for block in blocks:
        t0 = time.perf_counter()
        engine.step(block)
        times.append(time.perf_counter() - t0)
    del engine
    gc.collect()
    times = times[2:]
    return {"dtype": dtype, "weights": files.lm.name, "steps": len(times), "load_s": load_s,
            "median_ms": 1e3 * float(np.median(times)), "p95_ms": 1e3 * percentile(times, 95),
            "realtime_factor": float(np.median(times)) / 0.08}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("mlx", "moshi_mlx", "rustymimi", "numpy"))
    blas = "OpenBLAS preloaded" if "openblas" in os.environ.get("LD_PRELOAD", "") else "mlx's bundled BLAS"
    return (f"- Date: {datetime.date.today()}\n- CPU: {cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, "
            f"no GPU\n- OS: {platform.platform()}\n- Python {platform.python_version()}; {versions}; {blas}\n")


def startup_and_memory(full_folder: Path) -> list[str]:
    """Startup to listening vs the reference load, and peak memory of both models together."""
    import startup

    print("startup to listening, reference load, peak memory ...", flush=True)
    app = startup.startup_to_listening(full_folder, "bf16")
    ref = startup.reference_load(full_folder, "bf16")
    mem = startup.peak_memory(full_folder)
    return ["## Startup with a cached checkpoint (full size, bf16)", "",
            "| what | time |", "|---|---|",
            f"| VoiceVibe: app opens -> speech worker ready (loads the model) | {app['model_ready_s']:.1f} s |",
            f"| VoiceVibe: then Start -> \"listening to ...\" (model loaded) | {app['listening_s']:.2f} s |",
            f"| Kyutai's stt_from_mic_mlx.py load (LM + warmup, tokenizer, Mimi) | {ref['load_s']:.1f} s |", "",
            "## Peak memory: full-size STT and the brain (as if in one process)", "",
            "One fresh process loads the full-size STT checkpoint (bf16, 5 steps) and then the bundled brain "
            "model (one answer); RSS from /proc/self/status. The app now runs each in its own worker "
            "process (plus a light main process, ~100 MB); the sum is about the same.", "",
            "| what | RSS |", "|---|---|",
            f"| Python + imports | {mem['rss_start_mb']:.0f} MB |",
            f"| + full-size STT (bf16) | {mem['rss_stt_mb']:.0f} MB |",
            f"| + {mem['brain_name']} ({mem['brain_file_mb']:.0f} MB file) | {mem['rss_both_mb']:.0f} MB "
            f"(peak VmHWM {mem['peak_mb']:.0f} MB) |",
            f"| **estimate**, default brain gemma-3-1b-it-Q4_K_M (0.81 GB file, not downloadable here): STT + "
            f"file + the 270M's {mem['brain_overhead_mb']:.0f} MB beyond its file "
            f"| **~{mem['estimate_1b_mb'] / 1024:.1f} GB** |",
            "", "A 16 GB Mac holds both with room to spare; MLX on Apple silicon keeps the STT weights in unified "
            "memory, so the figure there is similar.", ""]


def sub_benchmarks(args: argparse.Namespace) -> list[str]:
    """The other bench scripts, each in its own process, linked."""
    quick = ["--phrases", "3"] if args.quick else []
    rows = [("Phrase end -> OSC overhead", "RESULTS-latency.md", sub_bench("latency.py", *quick)),
            ("Session log write and record cost", "RESULTS-session.md",
             sub_bench("session.py", *(["--n", "2000"] if args.quick else [])))]
    rows.append(("Brain latency vs bare llama.cpp", "RESULTS-brain.md",
                 "skipped (--skip-brain): last results" if args.skip_brain else sub_bench("brain.py")))
    rows.append(("Brain on a local server vs in process", "RESULTS-server-brain.md",
                 "skipped (--skip-brain): last results" if args.skip_brain else
                 sub_bench("server_brain.py", *(["--phrases", "2", "--short", "6"] if args.quick else []))))
    soak = "skipped (--skip-soak): last results" if args.skip_soak else \
        sub_bench("soak.py", "--hours", "0.25" if args.quick else "3")
    rows.append(("Soak: 3-hour show, memory and queues", "RESULTS-soak.md", soak))
    rows.append(("A cue: key press, OSC, MIDI -> OSC datagram", "RESULTS-cues.md",
                 sub_bench("cues.py", *(["--cues", "50"] if args.quick else []))))
    rows.append(("Models in worker processes, before and after: window lag across resets, mic overflows, "
                 "Start -> listening, the pipe's round trip, engine vs reference", "RESULTS-workers.md",
                 sub_bench("workers.py", *(["--quick"] if args.quick else []), *(["--skip-full"] if args.skip_full
                                                                                 else []))))
    out = ["## Other benchmarks (each its own process)", "", "| benchmark | results | this run |", "|---|---|---|"]
    out += [f"| {what} | [{name}]({name}) | {status} |" for what, name, status in rows]
    out += ["", "Soak memory curve (RSS over a simulated 3-hour show):", "", "![soak memory](soak-memory.png)", ""]
    return out


def save(out: list[str]) -> None:
    """Write what is measured so far (a long run interrupted still leaves its numbers)."""
    RESULTS.write_text("\n".join([*out, "", "_(run in progress)_", ""]), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer blocks (a smoke run)")
    parser.add_argument("--skip-full", action="store_true", help="skip the full-size (2 GB) checkpoint")
    parser.add_argument("--skip-soak", action="store_true", help="link the last soak results, do not rerun it")
    parser.add_argument("--skip-brain", action="store_true", help="link the last brain results, do not rerun it")
    args = parser.parse_args()
    load = Path("/proc/loadavg").read_text().strip()
    n = 60 if args.quick else 400
    out = ["# VoiceVibe benchmark results", "", "Written by `bench/run.py`; numbers from one run.", "",
           "## Machine", "", machine() + f"- Load average at the start: `{load}` (2 cores shared with other jobs)\n"]

    print("engine vs reference, tiny checkpoint ...", flush=True)
    tiny = engine_vs_reference(checkpoint("tiny", vad=True), "f32", n)
    out += ["## STT engine vs Kyutai's reference loop (same checkpoint, same audio, interleaved)", "",
            "Time per 80 ms block: Mimi encode + one LM step (+ VAD head for the engine).", "",
            "| checkpoint | blocks | engine median | reference median | ratio (median) | ratio (total) |",
            "|---|---|---|---|---|---|",
            f"| tiny f32 (dim 256, 2 layers, VAD heads) | {tiny['blocks']} | {tiny['engine_ms']:.2f} ms | "
            f"{tiny['reference_ms']:.2f} ms | {tiny['ratio_median']:.3f} | {tiny['ratio_total']:.3f} |"]
    if not args.skip_full:
        full_folder = checkpoint("full", vad=False)
        print("engine vs reference, full checkpoint ...", flush=True)
        full = engine_vs_reference(full_folder, "bf16", 30 if args.quick else 80)
        out.append(f"| full bf16 (1B, random weights, no VAD heads) | {full['blocks']} | {full['engine_ms']:.1f} ms | "
                   f"{full['reference_ms']:.1f} ms | {full['ratio_median']:.3f} | {full['ratio_total']:.3f} |")
    out += ["", "Goal: ratio under 0.95 (tiny: Mimi dominates) and under 1.0 (full size); the engine encodes with "
            "Mimi while the LM steps.", ""]

    print("callback and DSP cost ...", flush=True)
    cb = callback_cost(20_000 if args.quick else 200_000)
    dsp = dsp_cost(n)
    save(out)
    out += ["## Audio path", "", "| what | calls | p50 | p99 |", "|---|---|---|---|",
            f"| PortAudio callback (copy + put_nowait) | {cb['calls']} | {cb['p50_ms'] * 1e3:.1f} µs | "
            f"{cb['p99_ms'] * 1e3:.1f} µs |",
            f"| DSP per 1920-sample block (AGC + gate + meters) | {dsp['blocks']} | {dsp['p50_ms'] * 1e3:.0f} µs | "
            f"{dsp['p99_ms'] * 1e3:.0f} µs |", "", "Goal: callback p99 < 0.4 ms.", ""]

    if not args.skip_full:
        out += ["## Full-size checkpoint per step (engine: Mimi encode + LM step + VAD head)", "",
                "Real time needs <= 80 ms per step (an Apple-GPU property); here, ratios matter.", "",
                "| dtype | weights | steps | load | median | p95 | x real time |", "|---|---|---|---|---|---|---|"]
        for dtype, name, steps in [("bf16", "model.safetensors", 20), ("f32", "model.safetensors", 20),
                                   ("bf16", "model.q8.safetensors", 5), ("bf16", q4_weights(full_folder), 5)]:
            print(f"full-size steps {dtype} {name} ...", flush=True)
            try:
                r = full_step_times(full_folder, dtype, name, 8 if args.quick else steps)
            except Exception as e:  # one variant failing must not lose the rest of the run
                out.append(f"| {dtype} | {name} | did not run: {type(e).__name__}: {e} | | | | |")
                continue
            out.append(f"| {r['dtype']} | {r['weights']} | {r['steps']} | {r['load_s']:.1f} s | "
                       f"{r['median_ms']:.0f} ms | {r['p95_ms']:.0f} ms | {r['realtime_factor']:.1f} |")
        out.append("")
        save(out)
        out += startup_and_memory(full_folder)
        save(out)
    out += sub_benchmarks(args)
    RESULTS.write_text("\n".join(out), encoding="utf-8")
    print(RESULTS.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
