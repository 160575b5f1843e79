"""The outbox: the brain's answers to OSC, the session log and the front end, in order, on its own thread.

It lives as long as the engines: a prompt the brain makes (or the fallback, or a typed phrase's)
goes out whether or not a show runs. Each prompt is sent, stamped with when it left, counted
in the show's latency figures, logged and shown. `put` never blocks; a full queue drops the
item with a warning. Nothing periodic runs here (the supervisor checks overdue answers; a show's
`Health` sends the heartbeat and the figures), so nothing it does loops back into its queue.
"""

from __future__ import annotations

import logging
import queue
import threading

from voicevibe.config import OscConfig
from voicevibe.events import ImagePrompt, Status, Summary
from voicevibe.runtime.feed import EventFeed
from voicevibe.runtime.latency import LatencyStats
from voicevibe.show.transitions import TransitionSender

log = logging.getLogger(__name__)

QUEUE_SIZE = 100
JOIN_SECONDS = 10.0
Outgoing = ImagePrompt | Summary | Status
_STOP = object()


class Outbox:
    """Takes prompts, summaries and brain statuses from any thread and sends them out in order."""

    def __init__(self, osc: TransitionSender, feed: EventFeed, config: OscConfig) -> None:
        self.osc, self.feed, self.config = osc, feed, config
        self.latency = LatencyStats()  # the running show's (new_show starts afresh)
        self.last_brain_ms = 0.0
        self._queue: queue.Queue[Outgoing | object] = queue.Queue(QUEUE_SIZE)
        self._cond = threading.Condition()
        self._unsent = 0  # items put and not yet sent
        self._thread = threading.Thread(target=self._run, name="outbox")

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def new_show(self) -> LatencyStats:
        """A show starts: its own latency figures."""
        self.latency = LatencyStats()
        return self.latency

    def put(self, item: Outgoing) -> None:
        """Hand over an ImagePrompt, Summary or Status (any thread); never blocks: a full queue drops it."""
        with self._cond:
            self._unsent += 1
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            log.warning("outbox full: %s dropped", type(item).__name__)
            self._done()

    def wait_empty(self, timeout: float | None) -> bool:
        """Wait until everything put so far went out (True), or `timeout` (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._unsent == 0, timeout)

    def qsize(self) -> int:
        """Items waiting to go out (for the soak's queue watch)."""
        return self._queue.qsize()

    def stop(self) -> None:
        """Send what is queued, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(JOIN_SECONDS)

    def _done(self) -> None:
        with self._cond:
            self._unsent -= 1
            self._cond.notify_all()

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            try:
                self._send(item)  # type: ignore[arg-type]
            except Exception:  # top of the outbox's loop: the show goes on
                log.exception("sending %s failed", type(item).__name__)
            finally:
                self._done()

    def _send(self, item: Outgoing) -> None:
        if isinstance(item, ImagePrompt):
            sent = self.osc.send_prompt(item)
            self.latency.add(item, sent)
            self.last_brain_ms = item.latency_ms
            self.feed.post(item)
            self.feed.log(item, sent_at=sent)
        elif isinstance(item, Summary):
            if self.config.send_summary:
                self.osc.send_summary(item)
            self.feed.post(item)
            self.feed.log(item)
        else:
            self.feed.post(item)  # a Status: shown, and logged by the feed
