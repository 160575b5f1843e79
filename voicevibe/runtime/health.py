"""A show's health: the OSC heartbeat, the figures for the status bar, and why audio was dropped.

`Health` runs a show's periodic work on a thread of its own: the OSC heartbeat (checked every
TICK_SECONDS; the sender sends one every `osc.heartbeat_seconds`), and once a second the OSC
targets' counters, the `PipelineStats` and, when input blocks were dropped, one warning naming
why (`DropWarnings`); and the memory log (runtime/memory.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from voicevibe.config import FRAME_SECONDS, Config
from voicevibe.events import PipelineStats, Status
from voicevibe.runtime.feed import EventFeed
from voicevibe.runtime.memory import MemoryWatch
from voicevibe.runtime.outbox import Outbox
from voicevibe.show.transitions import TransitionSender
from voicevibe.speech.stage import SttStage

TICK_SECONDS = 0.1  # the heartbeat is looked at this often
STATS_SECONDS = 1.0
DROP_WARNING_SECONDS = 10.0  # a dropped-audio warning for the same cause is shown at most this often
JOIN_SECONDS = 5.0


@dataclass(frozen=True)
class Drops:
    """Input blocks dropped so far, by cause."""

    behind: int = 0  # the speech engine had audio.queue_seconds of audio in flight: it is too slow
    down: int = 0  # the speech engine was not running (loading, restarting), or died with blocks in hand
    unread: int = 0  # the audio thread did not read the input in time (the source's own drops)

    @property
    def total(self) -> int:
        """All of them."""
        return self.behind + self.down + self.unread


class DropWarnings:
    """Backpressure made visible: a warning naming why input blocks were dropped, at most one per cause every
    DROP_WARNING_SECONDS (a new cause, such as a state reset turning into an engine slower than real time, is
    news and is said at once); drops not yet said are counted into the next warning."""

    def __init__(self, queue_seconds: float) -> None:
        self.queue_seconds = queue_seconds
        self._warned = Drops()  # the drops at the last warning
        self._next: dict[str, float] = {}  # by cause: when it may be named again

    def check(self, drops: Drops, rtf: float, now: float) -> Status | None:
        """The warning to show now, if any."""
        behind, down, unread = (drops.behind - self._warned.behind, drops.down - self._warned.down,
                                drops.unread - self._warned.unread)
        why = {"slow": f"the speech engine is {rtf:.1f} x slower than real time",
               "behind": "the speech engine fell behind (a slow step or a state reset)",
               "down": "the speech engine was not running (loading or restarting)",
               "unread": "the audio thread did not read the input in time"}
        causes = [cause for cause, new in (("slow" if rtf >= 1.0 else "behind", behind), ("down", down),
                                           ("unread", unread)) if new > 0]
        if not any(now >= self._next.get(cause, 0.0) for cause in causes):
            return None  # nothing new to say yet: these drops are counted into the next warning
        self._warned = drops
        self._next.update((cause, now + DROP_WARNING_SECONDS) for cause in causes)
        new = behind + down + unread
        return Status("stt", f"{'; '.join(why[cause] for cause in causes)}: dropped {new} blocks "
                      f"({new * FRAME_SECONDS:.1f} s of audio, {drops.total} in all) to stay within "
                      f"audio.queue_seconds = {self.queue_seconds:g} s", "warning")


class Health:
    """A show's periodic work on its own thread; `stats()` from any thread."""

    def __init__(self, config: Config, feed: EventFeed, osc: TransitionSender, stt: SttStage, outbox: Outbox,
                 *, unread: Callable[[], int], log_path: str, memory: MemoryWatch | None = None) -> None:
        self.feed, self.osc, self.stt, self.outbox = feed, osc, stt, outbox
        self.memory = memory  # the memory log (every supervisor.memory_log_seconds)
        self.unread, self.log_path = unread, log_path
        self.warnings = DropWarnings(config.audio.queue_seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health")

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """End the thread, with the figures one last time."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(JOIN_SECONDS)

    def drops(self) -> Drops:
        """Blocks dropped so far in this show, by cause."""
        return Drops(self.stt.behind, self.stt.down + self.stt.lost, self.unread())

    def stats(self) -> PipelineStats:
        """The current health figures."""
        stt = self.stt
        return PipelineStats(stt.rtf(), self.drops().total, self.outbox.last_brain_ms, self.log_path,
                             stt.restarts + stt.counters.step_errors)

    def _run(self) -> None:
        next_stats = time.monotonic() + STATS_SECONDS
        while not self._stop.wait(TICK_SECONDS):
            self.osc.heartbeat()
            now = time.monotonic()
            if self.memory is not None:
                self.memory.tick(now)
            if now >= next_stats:
                next_stats = now + STATS_SECONDS
                self._report(now)
        self._report(time.monotonic())

    def _report(self, now: float) -> None:
        for status in self.osc.statuses():
            self.feed.post(status)
        stats = self.stats()
        self.feed.post(stats)
        warning = self.warnings.check(self.drops(), stats.stt_rtf, now)
        if warning is not None:
            self.feed.post(warning)
