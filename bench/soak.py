"""Soak: a simulated show through the whole Pipeline, faster than real time.

    .venv/bin/python bench/soak.py [--hours 3] [--codec fast|real] [--out bench]

Tiny generated checkpoint (real LM, real state resets), DSP, a scripted brain, OSC to a
local peer, the session log with its FLAC recorder. Input: espeak speech with pauses and
one 10-minute stretch of non-stop sound, generated block by block. `--codec fast` swaps
only the Mimi encoder for a deterministic stand-in (see voicevibe/testing/soak.py);
`--codec real` runs rustymimi (about 1.2x faster than real time on this CPU).
Writes RESULTS-soak[-real].md, soak-memory[-real].png and the samples as CSV.
Exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support.speech import write_speech  # noqa: E402
from voicevibe.audio import FileSource  # noqa: E402
from voicevibe.testing.checkpoint import write_checkpoint  # noqa: E402
from voicevibe.testing.soak import Sample, SoakResult, run_soak  # noqa: E402

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "voicevibe" / "bench"
RSS_GROWTH_LIMIT_MB = 50.0


def tiny_checkpoint(codec: str) -> Path:
    """The tiny VAD checkpoint with the real Mimi or the fast stand-in codec, generated once into the bench cache."""
    folder = CACHE / ("stt-tiny-vad" if codec == "real" else "stt-tiny-vad-fast-codec")
    if not (folder / "config.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        write_checkpoint(folder, "tiny", vad=True, seed=0, codec=codec)
    return folder


def warm_rss(result: SoakResult, warmup_minutes: float) -> tuple[Sample, Sample, float]:
    """The first sample after warm-up, the last sample, and the largest RSS after warm-up."""
    after = [s for s in result.samples if s.audio_minutes >= warmup_minutes] or result.samples[-1:]
    return after[0], result.samples[-1], max(s.rss_mb for s in after)


def checks(result: SoakResult, warmup_minutes: float) -> list[tuple[str, bool, str]]:
    """(what, passed, detail) for every property the soak must show."""
    warm, _, peak = warm_rss(result, warmup_minutes)
    growth = peak - warm.rss_mb
    return [
        ("no crash, no error status", result.stopped is not None and result.stopped.error is None
         and not result.errors, f"stopped={result.stopped}, errors={len(result.errors)}"),
        ("every block reached the engine once", result.blocks_in == result.frames_in == result.frames_fed
         == round(result.minutes * 750), f"blocks {result.blocks_in}, frames_in {result.frames_in}, "
         f"frames_fed {result.frames_fed}"),
        ("every word reached the log", result.words == result.logged_words > 0,
         f"{result.words} words emitted, {result.logged_words} logged"),
        ("every prompt reached the log and OSC", result.prompts == result.logged_prompts
         == result.osc["/visual/prompt"] > 0, f"{result.prompts} prompts, {result.logged_prompts} logged, "
         f"{result.osc['/visual/prompt']} received"),
        ("state resets in the non-stop stretch; no segment over the cap",
         result.resets_in_nonstop() > 0 and result.longest_segment() <= result.max_segment_frames,
         f"{result.resets_in_nonstop()} resets in the non-stop stretch, longest segment "
         f"{result.longest_segment()} of at most {result.max_segment_frames} blocks; {dict(result.resets)}"),
        ("queues bounded", all(result.max_queue(q) <= lim for q, lim in result.queue_limits.items()),
         ", ".join(f"{q} max {result.max_queue(q)} of {lim}" for q, lim in result.queue_limits.items())),
        (f"RSS growth after warm-up < {RSS_GROWTH_LIMIT_MB:g} MB", growth < RSS_GROWTH_LIMIT_MB,
         f"{growth:+.1f} MB (after {warmup_minutes:g} min {warm.rss_mb:.0f} MB, peak {peak:.0f} MB)"),
    ]


def plot(result: SoakResult, path: Path, warmup_minutes: float) -> None:
    """RSS over the show's audio time, warm-up marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=100)
    ax.plot([s.audio_minutes for s in result.samples], [s.rss_mb for s in result.samples], lw=1.4)
    ax.axvline(warmup_minutes, color="grey", ls="--", lw=0.8, label="end of warm-up")
    ax.set_xlabel("show time (minutes of audio)")
    ax.set_ylabel("resident memory (MB)")
    ax.set_title(f"VoiceVibe soak: {result.minutes / 60:g} h show, codec {result.codec}")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def report(result: SoakResult, warmup_minutes: float, png: Path, load: str) -> str:
    """RESULTS-soak.md."""
    warm, last, peak = warm_rss(result, warmup_minutes)
    rows = checks(result, warmup_minutes)
    hours = result.minutes / 60
    when = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
    resets = ", ".join(f"{k} {v}" for k, v in sorted(result.resets.items()))
    queues = ", ".join(f"{q} {result.max_queue(q)}/{lim}" for q, lim in result.queue_limits.items())
    speed = result.minutes * 60 / result.wall_seconds
    lines = [
        f"# Soak: {hours:g} h show, codec {result.codec}", "",
        f"`bench/soak.py --hours {hours:g} --codec {result.codec}` on {when}, "
        f"{platform.machine()} {platform.system()}, Python {platform.python_version()}; load before: `{load}`.", "",
        "Tiny generated checkpoint (real moshi_mlx LM, real state resets), DSP, scripted brain, OSC to a local "
        "peer (levels, transcript, prompts), control-in listening, session log with FLAC recording. Input: espeak "
        f"speech with 0.5-6 s pauses, and {(result.nonstop[1] - result.nonstop[0]) / 750:g} minutes of non-stop, "
        "rising noise (the DSP's AGC flattens it, so the engine resets there at a relatively quiet block in the last "
        "20 s before its cap, or at the cap)."
        + (" Mimi encoder: the fast deterministic stand-in (everything but rustymimi runs)." if result.codec == "fast"
           else " Mimi encoder: rustymimi."), "",
        "| check | result | detail |", "|---|---|---|",
        *[f"| {what} | {'pass' if ok else '**FAIL**'} | {detail} |" for what, ok, detail in rows], "",
        "| figure | value |", "|---|---|",
        f"| show simulated | {result.minutes:g} min ({hours:.2f} h) |",
        f"| wall time | {result.wall_seconds / 60:.1f} min ({speed:.1f}x real time) |",
        f"| blocks in / frames_in / frames_fed / LM steps | {result.blocks_in} / {result.frames_in} / "
        f"{result.frames_fed} / {result.steps} |",
        f"| state resets | {sum(result.resets.values())} ({resets}); {result.resets_in_nonstop()} in the non-stop "
        f"stretch; longest segment {result.longest_segment() * 0.08:.0f} s |",
        f"| words (tokens) emitted / logged | {result.words} / {result.logged_words} |",
        f"| phrases / prompts / prompts received over OSC | {result.phrases} / {result.prompts} / "
        f"{result.osc['/visual/prompt']} |",
        f"| OSC datagrams received | {sum(result.osc.values())} |",
        f"| dropped blocks / STT restarts | {result.dropped_blocks} / {result.stt_restarts} |",
        f"| max queue sizes (size/bound) | {queues} |",
        f"| RSS start / after warm-up ({warmup_minutes:g} min) / peak after / end | {result.samples[0].rss_mb:.0f} / "
        f"{warm.rss_mb:.0f} / {peak:.0f} / {last.rss_mb:.0f} MB (psutil: the main process and the workers, as the "
        "session log's `memory` lines) |",
        f"| speech worker's MLX memory at the end: active / cache | {last.mlx_active_mb:.0f} / {last.mlx_cache_mb:.0f} "
        "MB |",
        f"| session log size | {result.log_bytes / 1e6:.1f} MB |", "",
        f"![RSS over the show]({png.name})", "",
        "Warnings shown during the show: " + (f"{len(result.warnings)}, first: {result.warnings[0]}"
                                              if result.warnings else "none") + ".", "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the soak, write its report and plot; 1 if a check failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--codec", choices=("fast", "real"), default="fast")
    parser.add_argument("--nonstop-from", type=float, default=None, help="minute where the non-stop stretch starts")
    parser.add_argument("--warmup-minutes", type=float, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    args = parser.parse_args(argv)
    minutes = args.hours * 60
    nonstop_from = args.nonstop_from if args.nonstop_from is not None else min(60.0, minutes / 3)
    warmup = args.warmup_minutes if args.warmup_minutes is not None else min(20.0, minutes / 6)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    suffix = "" if args.codec == "fast" else "-real"
    checkpoint = tiny_checkpoint(args.codec)
    with tempfile.TemporaryDirectory(prefix="voicevibe-soak-") as tmp:
        blocks = list(FileSource(write_speech(Path(tmp) / "speech.wav"), realtime=False).blocks())

        def progress(s: Sample) -> None:
            if round(s.wall_seconds) % 60 < 5:
                print(f"  {s.wall_seconds / 60:6.1f} min wall, {s.audio_minutes:6.1f} min audio, RSS {s.rss_mb:.0f} MB,"
                      f" queues {s.events_qsize}/{s.brain_qsize}/{s.recorder_qsize}", flush=True)

        result = run_soak(checkpoint, blocks, Path(tmp), minutes=minutes,
                          nonstop_from=nonstop_from, nonstop_minutes=min(10.0, minutes / 3), progress=progress)
    args.out.mkdir(parents=True, exist_ok=True)
    png = args.out / f"soak-memory{suffix}.png"
    plot(result, png, warmup)
    with (args.out / f"soak-samples{suffix}.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["wall_seconds", "audio_minutes", "rss_mb", "events_qsize", "brain_qsize", "recorder_qsize",
                         "mlx_active_mb", "mlx_cache_mb"])
        for s in result.samples:
            writer.writerow([f"{s.wall_seconds:.1f}", f"{s.audio_minutes:.2f}", f"{s.rss_mb:.1f}",
                             s.events_qsize, s.brain_qsize, s.recorder_qsize, f"{s.mlx_active_mb:.1f}",
                             f"{s.mlx_cache_mb:.1f}"])
    text = report(result, warmup, png, load)
    (args.out / f"RESULTS-soak{suffix}.md").write_text(text, encoding="utf-8")
    print(text)
    return 0 if all(ok for _, ok, _ in checks(result, warmup)) else 1


if __name__ == "__main__":
    sys.exit(main())
