"""Memory over a long show: each process's resident memory and the speech model's MLX memory, logged.

Every `supervisor.memory_log_seconds` (a minute by default) `MemoryWatch` asks the speech worker for
MLX's figures (active, peak, cache: the worker answers between blocks, over its pipe) and writes one
`memory` line to the session log with them and the resident memory of the main process and of each
model worker, read with psutil (so it works the same on macOS and Linux). The soak's memory figure
reads the same numbers (`process_rss`, `MemoryReport`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from voicevibe.speech.stage import SttStage
from voicevibe.workers.messages import SttMemory

log = logging.getLogger(__name__)

ANSWER_SECONDS = 5.0  # a speech worker that has not answered by then is logged without MLX figures
MB = 1024 * 1024

Pids = Callable[[], dict[str, int | None]]  # process name -> pid (None: not running)


def process_rss(pids: dict[str, int | None]) -> dict[str, int]:
    """The resident memory (bytes) of each named process; one that is not running (or just ended) is left out."""
    rss = {}
    for name, pid in pids.items():
        if pid is None:
            continue
        try:
            rss[name] = psutil.Process(pid).memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            log.debug("no memory figure for %s (pid %s)", name, pid)
    return rss


@dataclass(frozen=True)
class MemoryReport:
    """One reading: resident memory by process, and the speech worker's MLX figures (None: not known)."""

    rss: dict[str, int]
    mlx: SttMemory | None

    @property
    def total_rss(self) -> int:
        """The processes' resident memory together, bytes."""
        return sum(self.rss.values())

    def record(self) -> dict[str, object]:
        """The session log's line, in MB."""
        line: dict[str, object] = {"type": "memory", "rss_mb": {k: round(v / MB, 1) for k, v in self.rss.items()},
                                   "rss_total_mb": round(self.total_rss / MB, 1)}
        if self.mlx is not None:
            line.update(mlx_active_mb=round(self.mlx.active / MB, 1), mlx_peak_mb=round(self.mlx.peak / MB, 1),
                        mlx_cache_mb=round(self.mlx.cache / MB, 1),
                        mlx_cache_limit_mb=round(self.mlx.cache_limit / MB, 1))
        return line


class MemoryWatch:
    """Asks, then logs, every `period` seconds; `tick(now)` is called often by the show's health thread."""

    def __init__(self, period: float, stt: SttStage, pids: Pids, write: Callable[[dict[str, object]], None]) -> None:
        self.period, self.stt, self.pids, self.write = period, stt, pids, write
        self._next = 0.0  # the first reading comes at the first tick
        self._asked: tuple[int, float] | None = None  # the question waiting for its answer, and when it was asked

    def tick(self, now: float) -> None:
        """Log an answered (or overdue) reading; ask again when the period is up."""
        if self._asked is not None:
            seq, asked_at = self._asked
            answer = self.stt.memory
            if answer is not None and answer.seq >= seq:
                self._log(answer)
            elif now - asked_at > ANSWER_SECONDS:
                self._log(None)
        if now >= self._next and self._asked is None:
            self._next = now + self.period
            seq = self.stt.ask_memory()
            if seq:
                self._asked = (seq, now)
            else:
                self._log(None)  # the speech worker is down: the processes' memory still counts

    def reading(self) -> MemoryReport:
        """The processes' memory now, with the speech worker's latest MLX figures."""
        return MemoryReport(process_rss({"main": os.getpid(), **self.pids()}), self.stt.memory)

    def _log(self, mlx: SttMemory | None) -> None:
        self._asked = None
        report = MemoryReport(self.reading().rss, mlx)
        self.write(report.record())
