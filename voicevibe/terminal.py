"""The headless front end: the pipeline's events printed in a terminal, typed lines sent to the brain.

The transcript and the prompts go to stdout; status, levels and the latency summary to stderr.
"""

from __future__ import annotations

import math
import queue
import select
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, TextIO

from voicevibe.events import (
    CueFired,
    ImagePrompt,
    Levels,
    Phrase,
    PhraseDropped,
    PhraseEnd,
    SayText,
    Status,
    Stopped,
    Summary,
    Word,
    WorkerState,
)
from voicevibe.runtime.pipeline import Pipeline

EXIT_OK, EXIT_ERROR = 0, 2
LEVEL_SECONDS = 5.0  # a level line this often
POLL_SECONDS = 0.2


def db(linear: float) -> str:
    """A linear peak as dBFS text."""
    return f"{20 * math.log10(linear):5.1f}" if linear > 1e-6 else " -inf"


def stdin_lines(stream: IO[str], stopped: threading.Event) -> Iterator[str]:
    """Lines typed on a terminal or piped in, stopping promptly when `stopped` is set."""
    while not stopped.is_set():
        ready, _, _ = select.select([stream], [], [], 0.2)
        if ready:
            line = stream.readline()
            if not line:
                return
            yield line


class TerminalFront:
    """Prints what the pipeline does; ends when its inputs are done and the last prompt went out."""

    def __init__(self, pipeline: Pipeline, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.pipeline = pipeline
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._next_level = 0.0
        self._weak = False
        self._mid_line = False
        self._stdin_stop = threading.Event()
        self._stdin_thread: threading.Thread | None = None

    def read_typed_lines(self) -> None:
        """Lines typed on stdin go to the brain as phrases (a front-end input, like the window's text box)."""
        stream = sys.stdin
        try:
            if stream is None or stream.closed or not stream.readable():
                return
            stream.fileno()
        except (OSError, ValueError):
            return

        def read() -> None:
            for line in stdin_lines(stream, self._stdin_stop):
                self.pipeline.apply(SayText(line))

        self._stdin_thread = threading.Thread(target=read, name="stdin")
        self._stdin_thread.start()

    def run(self) -> int:
        """Show events until the pipeline is done; then stop it and print the latency summary."""
        stopped = None
        while stopped is None:
            stopped = self._show_until(time.monotonic() + POLL_SECONDS)
            if stopped is None and self.pipeline.wait(0):
                self.pipeline.stop()
        return EXIT_OK if stopped.error is None else EXIT_ERROR

    def drain(self) -> None:
        """Show what is left after stop()."""
        while self._show_until(time.monotonic() + POLL_SECONDS) is None:
            pass

    def close(self) -> None:
        """Stop reading stdin and print the summary."""
        self._stdin_stop.set()
        if self._stdin_thread is not None:
            self._stdin_thread.join(1.0)
        self._end_line()
        print("latency per stage:\n" + self.pipeline.latency.summary(), file=self.err)
        if self.pipeline.log_path:
            print(f"session log: {self.pipeline.log_path}", file=self.err)

    def _show_until(self, deadline: float) -> Stopped | None:
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self.pipeline.events.get(timeout=left)
            except queue.Empty:
                return None
            if isinstance(item, Stopped):
                return item
            self.show(item)
        return None

    def _end_line(self) -> None:
        if self._mid_line:
            print(file=self.out, flush=True)
            self._mid_line = False

    def show(self, item: object) -> None:
        """Print one event."""
        if isinstance(item, Word):
            print(item.text, end="", file=self.out, flush=True)
            self._mid_line = True
        elif isinstance(item, PhraseEnd):
            self._end_line()
        elif isinstance(item, Phrase) and item.reason == "typed":
            self._end_line()
            print(f"> {item.text}", file=self.out, flush=True)
        elif isinstance(item, ImagePrompt):
            self._end_line()
            why = f", {item.reason}" if item.reason else ""
            print(f"  => {item.text}   [{item.source} {item.latency_ms:.0f} ms{why}]", file=self.out, flush=True)
        elif isinstance(item, CueFired):
            self._end_line()
            seed = f", seed {item.seed}" if item.seed is not None else ""
            heard = f' "{item.heard}"' if item.heard else ""
            goes = "->" if item.phrase else "=>" if item.sent else "--"  # a phrase cue's prompt follows; --: held
            print(f"  {goes} cue {item.number} {item.name}: {item.text}   [{item.via}{heard}{seed}]", file=self.out,
                  flush=True)
        elif isinstance(item, PhraseDropped):
            self._end_line()
            print(f"[phrase] not for the brain: {item.text!r} ({item.why})", file=self.err, flush=True)
        elif isinstance(item, Summary):
            self._end_line()
            print(f"  summary: {item.text}\n  => {item.image_prompt}   [{item.source}]", file=self.out, flush=True)
        elif isinstance(item, (Status, WorkerState)):
            self._end_line()
            print(f"[{item.stage}] {item.message}", file=self.err, flush=True)
        elif isinstance(item, Levels):
            self._levels(item)

    def _levels(self, levels: Levels) -> None:
        if levels.weak_signal and not self._weak:
            self._end_line()
            print("[audio] weak input signal: check the microphone and the gain", file=self.err, flush=True)
        self._weak = levels.weak_signal
        now = time.monotonic()
        if now >= self._next_level:
            self._next_level = now + LEVEL_SECONDS
            stats = self.pipeline.stats()
            self._end_line()
            print(f"[level] in {db(levels.peak_in)} dBFS  out {db(levels.peak_out)} dBFS  "
                  f"gate {'open' if levels.gate_open else 'shut'}  STT x{stats.stt_rtf:.2f} real time"
                  + (f"  dropped {stats.dropped_blocks} blocks" if stats.dropped_blocks else ""),
                  file=self.err, flush=True)
