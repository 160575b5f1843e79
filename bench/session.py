"""Session log bench: the cost of one `SessionLog.write` and one `record`, and what a show's log weighs.

Writes bench/RESULTS-session.md. Each write is timed from the caller's side (JSON encoding,
stamps, the lock, one unbuffered write syscall): per event kind alone, then with 4 threads
writing at once. `record` is timed on the audio thread's side (copy + put_nowait); the FLAC
writer's own cost per 80 ms block is timed separately. Sizes give the log's growth per hour.

    .venv/bin/python bench/session.py [--n 20000]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import soundfile as sf

from voicevibe.config import BLOCK, SAMPLE_RATE, SessionConfig
from voicevibe.events import ImagePrompt, Levels, Word
from voicevibe.runtime.session import SessionLog

OUT = Path(__file__).resolve().parent / "RESULTS-session.md"

EVENTS = {
    "word": Word(" forêt", 1234, 5678, 454.24),
    "levels (dsp.Levels)": Levels(0.31, 0.05, 0.42, 0.07, 1.8, True, False),
    "image_prompt + sent_at": ImagePrompt("cinematic film still, a white horse in the snow, light blue sky, dramatic "
                                          "lighting, rich colour", "un cheval blanc court dans la neige", "film",
                                          "calm", "model", latency_ms=2110.0, model="gemma-3-270m",
                                          phrase_closed_at=1000.0, brain_start=1000.01, brain_end=1002.1),
    "dict (osc_send)": {"type": "osc_send", "target": "192.168.1.20:2992", "address": "/visual/prompt",
                        "bytes": 132},
}
RATES_PER_HOUR = {"word": 2.5 * 3600, "levels (dsp.Levels)": 12.5 * 3600, "image_prompt + sent_at": 0.2 * 3600,
                  "dict (osc_send)": 0.8 * 3600}  # words 2.5/s, levels every 80 ms, a prompt every 5 s


def timed(fn, n: int) -> list[float]:  # noqa: ANN001 - any callable
    """n call times in microseconds."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e6)
    return times


def p(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    """Run the bench and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="writes per event kind")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows, sizes = [], {}
    with tempfile.TemporaryDirectory() as folder:
        with SessionLog.open(SessionConfig(log_dir=folder), record_audio=False) as log:
            for name, event in EVENTS.items():
                before = log.path.stat().st_size
                times = timed(lambda event=event: log.write(event), args.n)
                sizes[name] = (log.path.stat().st_size - before) / args.n
                rows.append((name, statistics.median(times), p(times, 0.95), p(times, 0.999), sizes[name]))
            contended: list[float] = []

            def writer() -> None:
                contended.extend(timed(lambda: log.write(EVENTS["word"]), args.n // 4))

            threads = [threading.Thread(target=writer) for _ in range(4)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            contended_rate = args.n / (time.perf_counter() - t0)

        audio = np.random.default_rng(0).uniform(-0.3, 0.3, (1000, BLOCK)).astype(np.float32)
        with SessionLog.open(SessionConfig(log_dir=folder), record_audio=True, name="rec") as log:
            record_times = []
            for start in range(0, len(audio), 200):  # under the queue's 250 blocks; a mic sends one per 80 ms
                blocks = iter(audio[start:start + 200])
                record_times += timed(lambda blocks=blocks: log.record(next(blocks)), 200)
                while log.blocks_recorded < start + 200:
                    time.sleep(0.01)
        assert log.blocks_dropped == 0, "the bench must not drop blocks"
        flac_path = Path(folder) / "plain.flac"
        with sf.SoundFile(flac_path, "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16", format="FLAC") as f:
            blocks = iter(audio)
            encode_times = timed(lambda: f.write(next(blocks)), len(audio))
        flac_bytes_per_s = log.audio_path.stat().st_size / (len(audio) * BLOCK / SAMPLE_RATE)

    per_hour = sum(sizes[k] * RATES_PER_HOUR[k] for k in sizes) / 1e6
    levels_per_hour = sizes["levels (dsp.Levels)"] * RATES_PER_HOUR["levels (dsp.Levels)"] / 1e6
    out = [
        "# Session log bench",
        "",
        f"`bench/session.py`, {datetime.now():%Y-%m-%d %H:%M}, {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.system()}, log in {tempfile.gettempdir()}, "
        f"{args.n} writes per kind. 1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after "
        "(shared 2-core machine: read the medians).",
        "",
        "One `SessionLog.write` from the caller's side (JSON encoding, mono + wall stamps, lock, one unbuffered "
        "`write` syscall, so every line is on disk before the call returns):",
        "",
        "| event | median µs | p95 µs | p99.9 µs | bytes/line |",
        "|---|---|---|---|---|",
        *(f"| {n} | {m:.1f} | {q95:.1f} | {q999:.1f} | {b:.0f} |" for n, m, q95, q999, b in rows),
        "",
        f"4 threads writing `word` lines at once: median {statistics.median(contended):.1f} µs, "
        f"p95 {p(contended, 0.95):.1f} µs per call; {contended_rate:,.0f} lines/s in all.",
        "",
        f"A show's log (words 2.5/s, a prompt every 5 s, 0.8 OSC sends/s) grows about "
        f"{per_hour - levels_per_hour:.1f} MB per hour without levels; logging every `dsp.Levels` "
        f"(12.5/s) adds {levels_per_hour:.1f} MB per hour and {12.5 * rows[1][1] / 1e4:.3f}% of one core.",
        "",
        f"`record(block)` on the audio thread (copy + put_nowait): median {statistics.median(record_times):.1f} µs, "
        f"p99.9 {p(record_times, 0.999):.1f} µs. The FLAC writer thread's encode+write of one 80 ms block: median "
        f"{statistics.median(encode_times):.0f} µs ({statistics.median(encode_times) / 800:.2f}% of real time); "
        f"recording size {flac_bytes_per_s / 1e3:.0f} kB/s ({flac_bytes_per_s * 3600 / 1e6:.0f} MB per hour) "
        "for uniform noise, the worst case: speech compresses better.",
        "",
    ]
    OUT.write_text("\n".join(out), encoding="utf-8")
    print("\n".join(out))


if __name__ == "__main__":
    main()
