"""Shows for tests: a config, a shared set of engines, waiting on the app, reading what it posted.

`show_config` is every test show's config (the checkpoint, OSC to the test's peer, the log under
tmp_path, the fallback builder as the brain); `engines` lends a module's tests one set of model
workers (a speech worker loaded once) when a test is not about the workers' lifecycle.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from voicevibe.config import Config
from voicevibe.config_files import load_config
from voicevibe.events import PauseBrain, ResetMemory, Stopped
from voicevibe.runtime.controls import Controls
from voicevibe.runtime.engines import Engines
from voicevibe.runtime.pipeline import Pipeline
from voicevibe.testing.faults import scripted_brain
from voicevibe.testing.peer import OscPeer

WAIT = 120.0  # a deadline for something that must happen, not a speed check


def show_config(tmp_path: Path, checkpoint: Path | str, peer: OscPeer, **sections: dict[str, Any]) -> Config:
    """A config for a test show: the given checkpoint, OSC to `peer` (the vocevibe addresses), the log under
    tmp_path/log, files played as fast as the engine goes, the fallback builder as the brain (no brain worker:
    fast and deterministic); `sections` override any of it, key by key."""
    layers = [{"stt": {"model": str(checkpoint)}, "audio": {"realtime": False},
               "osc": {"targets": f"127.0.0.1:{peer.port}", "preset": "vocevibe"},
               "session": {"log_dir": str(tmp_path / "log")}, "brain": {"model": "none"}}, sections]
    return load_config(overrides=layers, include_defaults_files=False)


def drain(events: queue.Queue[Any]) -> list[Any]:
    """Everything in the queue now, without waiting."""
    out = []
    while True:
        try:
            out.append(events.get_nowait())
        except queue.Empty:
            return out


def run_to_end(pipeline: Pipeline, timeout: float = 240.0) -> list[Any]:
    """Start, wait for the inputs to end and the brain to answer, stop; every event posted."""
    pipeline.start()
    assert pipeline.wait(timeout), "the pipeline did not finish its inputs in time"
    pipeline.stop()
    events = drain(pipeline.events)
    assert isinstance(events[-1], Stopped)
    return events


def until(what: Callable[[], Any], timeout: float = WAIT, every: float = 0.05) -> Any:
    """Poll `what()` until it is true; fail after `timeout`."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = what()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"gave up waiting after {timeout:.0f} s")


def children(pid: int) -> set[int]:
    """The live worker processes (multiprocessing's spawned children) of `pid`."""
    found = set()
    for child in psutil.Process(pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and any("spawn_main" in part for part in child.cmdline()):
                found.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def mapped_files(pid: int, *, lsof: bool = sys.platform == "darwin") -> set[str]:
    """The files a process has mapped: psutil's memory maps (it reads /proc on Linux), or `lsof` on macOS, where
    psutil has no memory maps; empty when the process is gone."""
    try:
        if not lsof:
            return {m.path for m in psutil.Process(pid).memory_maps()}
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return set()
    listed = subprocess.run(["lsof", "-n", "-P", "-p", str(pid), "-Fn"], capture_output=True, text=True, timeout=30)
    return {line[1:] for line in listed.stdout.splitlines() if line.startswith("n/")}


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Collector:
    """Everything the pipeline posted so far (the test drains the shared queue as it goes)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline, self.items = pipeline, []

    def __call__(self) -> list[Any]:
        self.items += drain(self.pipeline.events)
        return self.items

    def of(self, kind: type, where: Callable[[Any], bool] = lambda e: True) -> list[Any]:
        return [e for e in self() if isinstance(e, kind) and where(e)]


@contextlib.contextmanager
def brain_show(config: Config, **scripted: Any) -> Iterator[tuple[Engines, Pipeline, Collector]]:
    """A running show with no script whose brain worker is `scripted_brain(**scripted)`, loaded."""
    engines = Engines(config, brain_loader=functools.partial(scripted_brain, **scripted))
    controls = Controls(config, engines)
    pipeline = Pipeline(config, controls=controls, script=[])
    try:
        pipeline.start()
        until(lambda: engines.brain.worker.ready)
        yield engines, pipeline, Collector(pipeline)
    finally:
        pipeline.stop()
        controls.close()
        engines.close()


@pytest.fixture
def peer() -> Iterator[OscPeer]:
    """A UDP OSC receiver on a free loopback port (the render PC)."""
    with OscPeer() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def module_engines(fast_checkpoint: Path) -> Iterator[Engines]:
    """One `Engines` for a module's tests that are not about the workers' lifecycle: the speech worker
    (fast checkpoint) loads once, no brain worker (the fallback builder answers). Use `engines`."""
    config = load_config(overrides=[{"stt": {"model": str(fast_checkpoint)}, "brain": {"model": "none"}}],
                         include_defaults_files=False)
    engines = Engines(config)
    engines.start()
    try:
        yield engines
    finally:
        engines.close()


@pytest.fixture
def engines(module_engines: Engines) -> Engines:
    """`module_engines` as new: its event queue emptied of what earlier tests left, the brain's settings and
    memory as configured (a cue's style, a pause, stay with the test that made them)."""
    drain(module_engines.events)
    brain = module_engines.brain
    brain.command(ResetMemory())
    brain.command(PauseBrain(False))
    brain.configure(module_engines.config.brain)
    return module_engines


@pytest.fixture
def controls_for(engines: Engines) -> Iterator[Callable[[Config], Controls]]:
    """Controls for this test's shows on the module's engines (each config its own OSC sender, show file),
    closed at the end of the test so the next one can attach to the brain."""
    made: list[Controls] = []

    def make(config: Config) -> Controls:
        made.append(Controls(config, engines))
        return made[-1]

    yield make
    for controls in made:
        controls.close()
