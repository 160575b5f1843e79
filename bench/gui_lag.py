"""The window's event-loop lag while the full-size STT checkpoint runs a rehearsal on this CPU.

    flock /tmp/bench.lock .venv/bin/python bench/gui_lag.py [--checkpoint DIR] [--seconds 90]
    flock /tmp/bench.lock .venv/bin/python bench/gui_lag.py --slow-lookup --checkpoint TINY_DIR [--seconds 30]

`--slow-lookup`: one OSC target's name takes 5 s to (not) resolve, the other is a local receiver; the
operator presses F (freeze) twice a second and the heartbeat goes every 0.5 s. Results go to
bench/RESULTS-gui-lookup.md: the lag, and what the other target received while the slow name was looked up.

A 10 ms after() tick is scheduled over and over on the Tk thread; its lateness (when it ran
minus when it was due) is the lag an operator feels on a slider or the panic key. Measured
idle, then while the full-size random 1B checkpoint (bf16) loads and transcribes espeak
speech through the real Pipeline, with the window's own event poll running. The brain is the
fallback builder only, so the STT is the load. Goal: p95 under 50 ms. Results go to
bench/RESULTS-gui.md. Needs a display: uses $DISPLAY, or starts Xvfb.

`--stage-compare` runs the rehearsal twice, with the stage view (gui/stage.py) closed and then open, and
writes both tables into RESULTS-gui.md's "With the stage view open" section (the rest is kept).
"""

from __future__ import annotations

import argparse
import datetime
import faulthandler
import os
import platform
import socket
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import customtkinter as ctk  # noqa: E402

from support.speech import write_speech  # noqa: E402
from support.xvfb import xvfb  # noqa: E402
from voicevibe.config_files import load_config  # noqa: E402
from voicevibe.gui.window import PerformanceWindow  # noqa: E402
from voicevibe.testing.peer import OscPeer  # noqa: E402

TICK_MS = 10
STALL_MS = 50.0  # a tick this late is a stall an operator would notice
TRACE_AFTER_S = 0.3  # --trace-stalls: where every thread is when the Tk thread is this late
RESULTS = ROOT / "bench" / "RESULTS-gui.md"
LOOKUP_RESULTS = ROOT / "bench" / "RESULTS-gui-lookup.md"
SLOW_HOST = "render-pc.local"  # an unreachable .local name: mDNS waits, then gives up
LOOKUP_SECONDS = 5.0
FREEZE_EVERY_MS = 500
DEFAULT_CHECKPOINT = Path("/tmp/stt-full-vad")  # python -m voicevibe.testing.checkpoint DIR --size full --vad


class LagProbe:
    """Schedules a TICK_MS after() over and over and records how late each one ran."""

    def __init__(self, root: ctk.CTk, trace: IO[str] | None = None) -> None:
        self.root, self.trace = root, trace
        self.samples: list[tuple[float, float]] = []  # (time, lateness in ms)
        self._due = 0.0
        self._id: str | None = None

    def start(self) -> None:
        self._due = time.monotonic() + TICK_MS / 1000
        self._id = self.root.after(TICK_MS, self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        self.samples.append((now, max(0.0, (now - self._due) * 1000)))
        self._due = now + TICK_MS / 1000
        self._id = self.root.after(TICK_MS, self._tick)
        if self.trace is not None:  # a C watchdog: dumps every thread's stack if the next tick is this late
            faulthandler.cancel_dump_traceback_later()
            faulthandler.dump_traceback_later(TRACE_AFTER_S, file=self.trace)

    def stop(self) -> None:
        faulthandler.cancel_dump_traceback_later()
        if self._id is not None:
            self.root.after_cancel(self._id)

    def between(self, t0: float, t1: float) -> list[float]:
        return [lag for t, lag in self.samples if t0 <= t < t1]


def stats(lags: list[float]) -> str:
    if not lags:
        return "| 0 | - | - | - | - | - |"
    a = np.asarray(lags)
    return (f"| {len(a)} | {np.percentile(a, 50):.1f} ms | {np.percentile(a, 95):.1f} ms | "
            f"{np.percentile(a, 99):.1f} ms | {a.max():.1f} ms | {int((a > STALL_MS).sum())} |")


def run(checkpoint: Path, seconds: float, idle_seconds: float, trace: IO[str] | None = None, *,
        stage: bool = False) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        speech = write_speech(Path(tmp) / "speech.wav")
        config = load_config([], [{"stt": {"model": str(checkpoint), "dtype": "bf16"}, "brain": {"model": "none"}},
                                  {"osc": {"targets": "127.0.0.1:9"}}], include_defaults_files=False)
        root = ctk.CTk()
        window = PerformanceWindow(config, root, input_spec=str(speech), settings_file=Path(tmp) / "settings.toml")
        if stage:
            window.toggle_stage()  # it follows the words and the prompts for the whole run
        marks: dict[str, float] = {}
        handle = window.handle

        def watch(item: object) -> None:
            name = type(item).__name__
            if name == "WorkerState" and item.state == "ready" and "ready" not in marks:  # type: ignore[attr-defined]
                marks["ready"] = time.monotonic()
            if name == "Word":
                marks.setdefault("first_word", time.monotonic())
            if name == "Stopped":
                marks.setdefault("stopped", time.monotonic())
            handle(item)

        window.handle = watch  # type: ignore[method-assign]
        stop = window.stop

        def stopping() -> None:
            marks.setdefault("stopping", time.monotonic())
            stop()

        window.stop = stopping  # type: ignore[method-assign]
        probe = LagProbe(root, trace)
        t0 = time.monotonic()
        marks["start"] = t0 + idle_seconds
        root.after(int(idle_seconds * 1000), window.start)
        root.after(int((idle_seconds + seconds) * 1000), root.quit)
        probe.start()
        root.mainloop()
        end = time.monotonic()
        probe.stop()
        window.close()
        load = os.getloadavg()
    ready = marks.get("ready", end)
    stopping = marks.get("stopping", end)
    rows = [
        f"| idle (window open, nothing running) {stats(probe.between(t0 + 1, marks['start']))}",
        f"| loading the STT model (bf16, {checkpoint.name}) {stats(probe.between(marks['start'], ready))}",
        f"| rehearsal: STT stepping the model {stats(probe.between(ready, stopping))}",
    ]
    if "stopping" in marks:
        rows.append(f"| end of the file: Pipeline.stop() joining the threads (in the window's helper thread) "
                    f"{stats(probe.between(stopping, marks.get('stopped', end) + 0.5))}")
    timeline = (f"- Timeline: model ready {ready - marks['start']:.1f} s after Start; "
                + (f"the file ended and the engine stopped {stopping - marks['start']:.1f} s after Start."
                   if "stopping" in marks else "still running when the measurement ended."))
    return "\n".join([
        "# GUI event-loop lag",
        "",
        "Written by `bench/gui_lag.py` (run under `flock /tmp/bench.lock`); numbers from one run.",
        "",
        f"- Date: {datetime.date.today()}; {platform.platform()}; Python {platform.python_version()}; "
        f"{os.cpu_count()} CPUs",
        f"- Load average (1/5/15 min) at the end: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} "
        "(other agents share this machine)",
        f"- Tick: after({TICK_MS}) rescheduled from itself; lateness = run time minus due time. The window's own "
        "event poll (40 ms, up to 200 events) runs alongside.",
        f"- Rehearsal: espeak speech (~12 s) paced at real time through the real Pipeline, full-size random 1B "
        f"checkpoint in bf16 (~600-770 ms a step here, far slower than real time), fallback brain; measured for "
        f"{seconds:.0f} s after Start.",
        timeline,
        "",
        f"| phase | ticks | p50 lateness | p95 | p99 | max | ticks > {STALL_MS:.0f} ms |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Worst stalls (seconds after Start: lateness): " + ", ".join(
            f"{t - marks['start']:+.1f} s: {lag:.0f} ms" for t, lag in sorted(probe.samples, key=lambda x: -x[1])[:5]),
        "",
        "Goal: p95 under 50 ms while the model runs.",
        "",
    ])


class SlowNames:
    """socket.getaddrinfo where SLOW_HOST takes LOOKUP_SECONDS and then does not resolve; other names are real.

    Records each slow lookup's thread and span, to show where it ran and what arrived meanwhile."""

    def __init__(self) -> None:
        self.real = socket.getaddrinfo
        self.calls: list[tuple[str, float, float]] = []  # (thread name, start, end)

    def __call__(self, host: object, *args: object, **kwargs: object) -> list:
        if host != SLOW_HOST:
            return self.real(host, *args, **kwargs)  # type: ignore[arg-type]
        start = time.monotonic()
        time.sleep(LOOKUP_SECONDS)
        self.calls.append((threading.current_thread().name, start, time.monotonic()))
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def run_slow_lookup(checkpoint: Path, seconds: float, idle_seconds: float) -> str:
    names = SlowNames()
    socket.getaddrinfo = names  # type: ignore[assignment]  # the app's own lookup path, with a slow name service
    with tempfile.TemporaryDirectory() as tmp, OscPeer() as peer:
        speech = write_speech(Path(tmp) / "speech.wav")
        config = load_config([], [{"stt": {"model": str(checkpoint)}, "brain": {"model": "none"}},
                                  {"osc": {"targets": f"{SLOW_HOST}:9000, 127.0.0.1:{peer.port}",
                                           "heartbeat_seconds": 0.5}}], include_defaults_files=False)
        root = ctk.CTk()
        built = time.monotonic()
        window = PerformanceWindow(config, root, input_spec=str(speech), settings_file=Path(tmp) / "settings.toml")
        built = time.monotonic() - built
        presses = [0]

        def press_f() -> None:  # the operator's freeze key, on the Tk thread like the real key
            window.screen.toggle_freeze()
            presses[0] += 1
            root.after(FREEZE_EVERY_MS, press_f)

        probe = LagProbe(root)
        t0 = time.monotonic()
        root.after(int(idle_seconds * 1000), window.start)
        root.after(int(idle_seconds * 1000), press_f)
        root.after(int((idle_seconds + seconds) * 1000), root.quit)
        probe.start()
        root.mainloop()
        end = time.monotonic()
        probe.stop()
        statuses = window.controls.osc.statuses()
        window.close()
        arrivals = [at for at, _ in peer.datagrams]
        load = os.getloadavg()
    start = t0 + idle_seconds
    during = [(thread, a, b) for thread, a, b in names.calls if a >= start and b <= end]
    meanwhile = [sum(a <= at < b for at in arrivals) for _, a, b in during]
    threads = sorted({thread.split(" ")[0] for thread, _, _ in names.calls})
    slow, fast = statuses
    return "\n".join([
        "# GUI event-loop lag with an OSC target whose name takes 5 s to look up",
        "",
        "Written by `bench/gui_lag.py --slow-lookup` (run under `flock /tmp/voicevibe-heavy.lock`); one run.",
        "",
        f"- Date: {datetime.date.today()}; {platform.platform()}; Python {platform.python_version()}; "
        f"{os.cpu_count()} CPUs; load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}",
        f"- Targets: `{SLOW_HOST}:9000`, whose getaddrinfo sleeps {LOOKUP_SECONDS:g} s then fails (EAI_NONAME; the "
        "app's own lookup code, with socket.getaddrinfo slowed), and a local OSC receiver.",
        f"- A rehearsal through the real Pipeline (tiny checkpoint `{checkpoint.name}`, fallback brain), heartbeat "
        f"every 0.5 s, the F key's freeze toggled on the Tk thread every {FREEZE_EVERY_MS} ms ({presses[0]} presses)."
        f" Measured for {seconds:.0f} s after Start.",
        f"- Building the window (it makes the OSC sender): {built * 1000:.0f} ms.",
        "",
        f"| phase | ticks | p50 lateness | p95 | p99 | max | ticks > {STALL_MS:.0f} ms |",
        "|---|---|---|---|---|---|---|",
        f"| idle (window open) {stats(probe.between(t0 + 1, start))}",
        f"| show running, slow name looked up again every 5 s {stats(probe.between(start, end))}",
        "",
        f"- Slow lookups during the show: {len(during)}, on threads: {', '.join(threads) or 'none'}.",
        f"- Datagrams the local receiver got while each of them ran: {meanwhile or 'none'} "
        f"(all {len(arrivals)} over the run).",
        f"- Sender counters at the end: `{slow.target}` sent {slow.sent}, lost {slow.errors} "
        f"({slow.last_error!r}); `{fast.target}` sent {fast.sent}, lost {fast.errors}.",
        "",
        "Goal: p95 under 50 ms, and the local receiver keeps receiving while the slow name is looked up.",
        "",
    ])


STAGE_SECTION = "## With the stage view open"


def stage_comparison(checkpoint: Path, seconds: float, idle_seconds: float) -> str:
    """The same rehearsal with the stage view closed, then open: both tables, for RESULTS-gui.md."""
    tables = {}
    for stage in (False, True):
        text = run(checkpoint, seconds, idle_seconds, stage=stage)
        rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| phase")]
        tables[stage] = [f"| stage view {'open' if stage else 'closed'}: {row[2:]}" for row in rows]
        tables[stage].append(next(line for line in text.splitlines() if line.startswith("- Timeline")))
    load = os.getloadavg()
    return "\n".join([
        STAGE_SECTION, "",
        f"`bench/gui_lag.py --stage-compare` (under `flock /tmp/voicevibe-heavy.lock`), {datetime.date.today()}, "
        f"checkpoint `{checkpoint.name}`, {seconds:.0f} s after Start each, load average at the end "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}. The stage view redraws its two labels only when the words or "
        "the prompt changed, at most every 120 ms (window.STAGE_TICKS polls).", "",
        f"| run and phase | ticks | p50 lateness | p95 | p99 | max | ticks > {STALL_MS:.0f} ms |",
        "|---|---|---|---|---|---|---|",
        *[row for stage in (False, True) for row in tables[stage] if row.startswith("|")], "",
        *[f"- Stage view {'open' if stage else 'closed'}: {tables[stage][-1][2:]}" for stage in (False, True)], "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--seconds", type=float, default=90.0, help="how long to measure after Start")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--slow-lookup", action="store_true", help="an OSC target whose name takes 5 s to look up")
    parser.add_argument("--stage-compare", action="store_true",
                        help="measure with the stage view closed, then open (the section of its own in the results)")
    parser.add_argument("--trace-stalls", type=Path, help=f"write every thread's stack here when a tick is "
                        f"{TRACE_AFTER_S * 1000:.0f} ms late (faulthandler)")
    args = parser.parse_args()
    if not (args.checkpoint / "config.json").is_file():
        sys.exit(f"{args.checkpoint}: no checkpoint; write one with "
                 f"python -m voicevibe.testing.checkpoint {args.checkpoint} --size full --vad")
    with ExitStack() as stack:
        if not os.environ.get("DISPLAY"):
            os.environ["DISPLAY"] = stack.enter_context(xvfb())
        ctk.set_appearance_mode("dark")
        trace = stack.enter_context(open(args.trace_stalls, "w")) if args.trace_stalls else None
        if args.slow_lookup:
            text = run_slow_lookup(args.checkpoint, args.seconds, args.idle_seconds)
        elif args.stage_compare:
            kept = RESULTS.read_text(encoding="utf-8").split(STAGE_SECTION)[0].rstrip() if RESULTS.exists() else ""
            text = f"{kept}\n\n{stage_comparison(args.checkpoint, args.seconds, args.idle_seconds)}"
        else:
            text = run(args.checkpoint, args.seconds, args.idle_seconds, trace)
    (LOOKUP_RESULTS if args.slow_lookup else RESULTS).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
