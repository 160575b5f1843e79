"""Stand-ins for the window tests: a show that records, engines with no worker process.

The window runs on real `Controls` (commands, the OSC sender, show control) over `QuietEngines`,
which start no process; `RecordingControls` also records every command it carries out.
"""

from __future__ import annotations

import queue
from typing import Any

from voicevibe.config import Config
from voicevibe.events import Command, Stopped
from voicevibe.runtime.controls import Controls
from voicevibe.runtime.engines import Engines


class RecordingPipeline:
    """Stands in for runtime.pipeline.Pipeline: records how it was made; the test feeds its event queue."""

    made: list[RecordingPipeline] = []

    def __init__(self, config: Config, **kwargs: Any) -> None:
        self.config, self.kwargs = config, kwargs
        self.events: queue.Queue[Any] = queue.Queue(1000)
        self.stopped = False
        RecordingPipeline.made.append(self)

    def start(self) -> None:
        pass

    def wait(self, timeout: float | None = None) -> bool:
        return False

    def stop(self) -> None:  # called from the window's helper thread, as Pipeline.stop() would be
        self.stopped = True
        self.events.put(Stopped(None))


class QuietEngines(Engines):
    """Engines that start no worker process; records what the window asks of them."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.configs: list[Config] = []
        self.closed = False

    def start(self) -> None:
        self.started = True

    def reconfigure(self, config: Config) -> None:
        self.configs.append(config)

    def close(self) -> None:
        self.closed = True
        super().close()


class RecordingControls(Controls):
    """The real controls on QuietEngines, recording every command they carry out."""

    def __init__(self, config: Config | None = None) -> None:
        config = config or Config()
        super().__init__(config, QuietEngines(config))
        self.commands: list[Command] = []

    def apply(self, command: Command) -> None:
        self.commands.append(command)
        super().apply(command)


def started(window: Any, mode: str = "Script") -> RecordingPipeline:
    """Start a show in the window (Script mode: no device, no file) and return its stand-in."""
    window.ui.mode.set(mode)
    window.start()
    assert isinstance(window.pipeline, RecordingPipeline)
    return window.pipeline
