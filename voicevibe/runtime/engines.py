"""The models' worker processes for the app's whole life: loaded once, kept across shows.

`Engines` starts the speech engine (speech/stage.py) and the brain (brain/stage.py)
in their worker processes when the window opens or `run --no-gui` starts, and keeps them
loaded across Start/Stop and input changes; the supervisor restarts a worker that dies or
hangs; changing a model setting restarts only that worker, on a thread of its own: the old
worker may take up to supervisor.STOP_SECONDS to end, and the window never waits on it.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from voicevibe.brain.stage import DEFAULT_LOADER as BRAIN_LOADER
from voicevibe.brain.stage import BrainStage
from voicevibe.config import Config
from voicevibe.events import Event
from voicevibe.runtime.feed import EventFeed
from voicevibe.speech.stage import DEFAULT_LOADER as STT_LOADER
from voicevibe.speech.stage import SttStage
from voicevibe.workers.stage import Loader
from voicevibe.workers.supervisor import Supervisor

log = logging.getLogger(__name__)

STT_LOAD_KEYS = ("model", "dtype")  # changing these reloads the speech model; the rest apply per stream
RELOAD_CAUSE = "a model setting changed"  # why a worker stopped, for the work it had
BRAIN_LOAD_KEYS = ("model", "model_file", "download", "mode", "n_threads", "n_ctx", "gpu_layers", "temperature",
                   "max_tokens", "blocklist_file", "server_model", "api_key_env", "server_output")


class Engines:
    """The speech engine and the brain in their worker processes, loaded once for the app's life."""

    def __init__(self, config: Config, *, feed: EventFeed | None = None, stt_loader: Loader = STT_LOADER,
                 brain_loader: Loader = BRAIN_LOADER) -> None:
        self.config = config
        self.feed = feed or EventFeed()  # worker states and statuses: the front end, and a running show's log
        self.stt = SttStage(config, self.feed.post, stt_loader)
        self.brain = BrainStage(config, self.feed.post, brain_loader)
        # The brain's overdue answers and hangs are checked on the supervisor's thread, beside the processes.
        self.supervisor = Supervisor([self.stt.worker, self.brain.worker], checks=[self.brain.check])
        self.started = False
        self._restarter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engines-restart")  # in order

    @property
    def events(self) -> queue.Queue[Event]:
        """The front end's event queue."""
        return self.feed.events

    def start(self) -> None:
        """Start both workers (they load their models) and the supervisor; idempotent."""
        if not self.started:
            self.started = True
            self.stt.worker.start()
            if self.brain.enabled:
                self.brain.worker.start()
            self.supervisor.start()

    def ensure_running(self) -> None:
        """Start again a worker the supervisor gave up on (Start tries again)."""
        for worker in self.supervisor.workers:
            if worker.state == "failed" and (worker is not self.brain.worker or self.brain.enabled):
                worker.start()

    def reconfigure(self, config: Config) -> None:
        """New settings: a worker whose model settings changed is restarted; the other keeps its model."""
        old, self.config = self.config, config
        self.brain.configure(config.brain)
        stt_changed = any(getattr(old.stt, k) != getattr(config.stt, k) for k in STT_LOAD_KEYS)
        brain_changed = any(getattr(old.brain, k) != getattr(config.brain, k) for k in BRAIN_LOAD_KEYS)
        if not self.started:  # nothing loaded yet: the workers will start with these settings
            self.stt.worker.spec, self.brain.worker.spec = self.stt.spec(config.stt), self.brain.spec(config.brain)
            return
        if stt_changed:
            self._restart(self.stt.worker.respawn, self.stt.spec(config.stt), RELOAD_CAUSE)
        if not self.brain.enabled:
            self._restart(self.brain.worker.stop, cause='brain.model is "none"')
        elif brain_changed or self.brain.worker.state == "stopped":
            self._restart(self.brain.worker.respawn, self.brain.spec(config.brain), RELOAD_CAUSE)

    def reload(self, *, speech: bool = False, brain: bool = False) -> None:
        """Model files arrived (a first-launch download): restart the workers that load them, same settings."""
        if not self.started:
            return
        if speech:
            self._restart(self.stt.worker.respawn, self.stt.worker.spec, "its model files arrived")
        if brain and self.brain.enabled:
            self._restart(self.brain.worker.respawn, self.brain.worker.spec, "its model files arrived")

    def _restart(self, action: Callable[..., None], *args: object, **kwargs: object) -> None:
        """Stop and start a worker off the caller's thread (the window's), after any restart before it."""
        self._restarter.submit(action, *args, **kwargs).add_done_callback(_log_failure)

    def close(self) -> None:
        """Finish the restarts under way, then stop the workers (each killed if it does not exit in time)."""
        self._restarter.shutdown(wait=True)
        self.supervisor.close()


def _log_failure(future: Future[None]) -> None:
    if future.exception() is not None:
        log.error("restarting a model worker failed", exc_info=future.exception())
