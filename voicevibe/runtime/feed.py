"""Where the app's events go: the front end's queue, and the session log while a show runs.

Every stage posts here (`post`) from whatever thread it runs on; the front end (the window's
poll, the terminal) reads `events`. A front end that stops reading loses the oldest events,
never blocks a stage. Statuses and worker states are also written to the running show's log;
the other events are logged where they happen, with what only that place knows (`log`).
"""

from __future__ import annotations

import logging
import queue

from voicevibe.events import Command, Event, Status, WorkerState
from voicevibe.runtime.session import SessionLog

log = logging.getLogger(__name__)

EVENT_QUEUE_SIZE = 2000
ALSO_LOGGED = (Status, WorkerState)  # posted events the session log keeps as they are posted


def post_latest(events: queue.Queue[Event], item: Event) -> None:
    """Queue an item for the front end, dropping the oldest if it is not keeping up."""
    while True:
        try:
            events.put_nowait(item)
            return
        except queue.Full:
            try:
                events.get_nowait()
            except queue.Empty:
                pass


class EventFeed:
    """The front end's event queue, and the session log of the show that runs (if one does)."""

    def __init__(self, events: queue.Queue[Event] | None = None) -> None:
        self.events: queue.Queue[Event] = events if events is not None else queue.Queue(EVENT_QUEUE_SIZE)
        self._log: SessionLog | None = None

    def post(self, item: Event) -> None:
        """Show an event (any thread); statuses and worker states are logged too."""
        post_latest(self.events, item)
        if isinstance(item, ALSO_LOGGED):
            log.debug("%s", item)  # front ends show it
            self.log(item)

    def log(self, item: Event | Command | dict[str, object], **extra: object) -> None:
        """Write one line to the running show's session log; nothing when no show runs."""
        session = self._log
        if session is not None:
            session.write(item, **extra)

    def attach_log(self, session: SessionLog | None) -> None:
        """A show starts (its log) or ends (None)."""
        self._log = session
