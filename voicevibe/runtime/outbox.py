"""The dispatcher: finished prompts and summaries to OSC, the session log and the front end.

Its own thread takes what the brain (or the fallback) made from a bounded queue, sends it,
stamps when it left, logs it and shows it. About ten times a second it also does the
periodic work: the OSC heartbeat, overdue brain answers, and once a second the health
figures and the OSC targets' status.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from voicevibe.config import Config
from voicevibe.events import ImagePrompt, Status, Summary
from voicevibe.osc import OscSender
from voicevibe.runtime.session import LatencyStats, SessionLog

log = logging.getLogger(__name__)

QUEUE_SIZE = 100
TICK_SECONDS = 0.1  # periodic work runs at least this often
STATS_SECONDS = 1.0
JOIN_SECONDS = 10.0
_STOP = object()


class Dispatcher:
    """Takes prompts, summaries and brain statuses from any thread and sends them out in order.

    `tick(now)` runs on the dispatcher's thread every TICK_SECONDS; `post` shows (and logs) an
    item; `stats_tick()` once a second.
    """

    def __init__(self, config: Config, osc: OscSender | None, log_: SessionLog | None, post: Callable[[object], None],
                 *, tick: Callable[[float], None], stats_tick: Callable[[], None]) -> None:
        self.config, self.osc, self.log, self.post = config, osc, log_, post
        self.latency = LatencyStats()
        self.last_brain_ms = 0.0
        self._tick, self._stats_tick = tick, stats_tick
        self._queue: queue.Queue = queue.Queue(QUEUE_SIZE)
        self._cond = threading.Condition()
        self._unsent = 0  # items put and not yet dispatched
        self._thread = threading.Thread(target=self._run, name="dispatch")

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def put(self, item: object) -> None:
        """Hand over an ImagePrompt, Summary or Status (any thread); never blocks: a full queue drops it."""
        with self._cond:
            self._unsent += 1
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            log.warning("dispatcher queue full: %s dropped", type(item).__name__)
            self._done()

    def wait_empty(self, timeout: float | None) -> bool:
        """Wait until everything put so far went out (True), or `timeout` (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._unsent == 0, timeout)

    def stop(self) -> None:
        """Send what is queued, then end the thread."""
        self._queue.put(_STOP)
        self._thread.join(JOIN_SECONDS)

    def _done(self) -> None:
        with self._cond:
            self._unsent -= 1
            self._cond.notify_all()

    def _run(self) -> None:
        next_stats = time.monotonic() + STATS_SECONDS
        next_tick = time.monotonic() + TICK_SECONDS
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, min(next_tick, next_stats) - time.monotonic()))
            except queue.Empty:
                item = None
            if item is _STOP:
                return
            if item is not None:
                try:
                    self._dispatch(item)
                except Exception:  # top of the dispatcher's loop: the show goes on
                    log.exception("dispatching %s failed", type(item).__name__)
                finally:
                    self._done()
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + TICK_SECONDS
                self._tick(now)
            if now >= next_stats:
                next_stats = now + STATS_SECONDS
                self._stats_tick()

    def _dispatch(self, item: object) -> None:
        if isinstance(item, ImagePrompt):
            sent = self.osc.send_prompt(item) if self.osc is not None else None
            self.latency.add(item, sent)
            self.last_brain_ms = item.latency_ms
            self.post(item)
            if self.log is not None:
                self.log.write(item, sent_at=sent)
        elif isinstance(item, Summary):
            if self.osc is not None and self.config.osc.send_summary:
                self.osc.send_summary(item)
            self.post(item)
            if self.log is not None:
                self.log.write(item)
        elif isinstance(item, Status):
            self.post(item)  # the front end shows it and the pipeline logs it
        else:
            log.warning("dispatcher ignores %s", type(item).__name__)
