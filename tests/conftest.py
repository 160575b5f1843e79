"""Shared fixtures: tiny random-weight Kyutai STT checkpoints, built once per run."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from filelock import FileLock
from moshi_mlx import models

from voicevibe.testing.checkpoint import CONFIG_NAME, write_checkpoint


REAL_CACHE = Path.home() / ".cache"  # models and the assembled bundled GGUF stay shared between tests
# Fixtures for one shared resource: the tests using them run in the serial group, as do the `timing` tests.
SERIAL_FIXTURES = {"display", "virtual_mic", "jack"}


def is_serial(item: pytest.Item) -> bool:
    """A test that uses one shared resource (a display, the virtual mic, JACK) or measures time."""
    return bool(SERIAL_FIXTURES & set(getattr(item, "fixturenames", ()))) or item.get_closest_marker("timing") is not None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (--dist loadgroup), one worker runs the serial group one test at a time; the
    slow tests (minutes) go first, so that the end of the run is not one of them running alone."""
    for item in items:
        if is_serial(item):
            item.add_marker(pytest.mark.xdist_group("serial"))
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Under pytest-xdist, a serial test runs alone: it holds the run's lock exclusively (setup to teardown)
    while every other test holds it shared, so nothing runs beside a test that measures time or feeds a
    real-time device on this 2-core machine; the rest run two at a time."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        yield
        return
    with open(Path(tempfile.gettempdir()) / f"voicevibe-tests-{run}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if is_serial(item) else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def _threads_at_start() -> None:
    """Threads alive before the test are not its own (tests/stagethreads.py)."""
    from stagethreads import mark_test_start

    mark_test_start()


@pytest.fixture(autouse=True)
def user_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test, and every process it starts, gets its own empty user config and log dirs.

    Linux: platformdirs reads XDG_*. macOS: platformdirs ignores XDG and uses ~/Library (Logs,
    Application Support), so HOME itself points at a fresh folder, whose .cache is the real one.
    """
    home = tmp_path_factory.mktemp("user")
    REAL_CACHE.mkdir(parents=True, exist_ok=True)
    (home / ".cache").symlink_to(REAL_CACHE, target_is_directory=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    return home


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Path:
    """A folder `build(folder)` fills once per run, whichever test process asks first.

    Under pytest-xdist each worker is a session of its own: the folder lives beside the workers'
    temporary folders, and a file lock makes the others wait for the first one's build.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, shared by its workers (removed with it)
    folder = root / "built" / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        done = folder.with_name(name + ".done")
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny `-candle`-style checkpoint: PyTorch tensor names plus 4 semantic-VAD heads, the real Mimi."""
    return built_once(tmp_path_factory, "stt-tiny-candle",
                      lambda out: write_checkpoint(out, "tiny", vad=True, seed=0))


@pytest.fixture(scope="session")
def fast_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny_checkpoint` with the tests' fast stand-in codec (testing/fastcodec.py) in place of Mimi:
    for the tests about flow (pipeline, workers, faults, window), where tokens are not the point."""
    return built_once(tmp_path_factory, "stt-tiny-candle-fast",
                      lambda out: write_checkpoint(out, "tiny", vad=True, seed=0, codec="fast"))


@pytest.fixture(scope="session")
def fast_plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MLX names, no VAD heads (resets come from quiet moments and the cap), the fast stand-in codec."""
    return built_once(tmp_path_factory, "stt-tiny-mlx-fast",
                      lambda out: write_checkpoint(out, "tiny", seed=0, codec="fast"))


@pytest.fixture(scope="session")
def tiny_checkpoint_mlx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny `-mlx`-style checkpoint: MLX tensor names, no VAD heads, plus model.q8.safetensors."""
    return built_once(tmp_path_factory, "stt-tiny-mlx",
                      lambda out: write_checkpoint(out, "tiny", seed=0, quantize=8))


@pytest.fixture(scope="session")
def tiny_lm_config(tiny_checkpoint: Path) -> models.LmConfig:
    """The moshi_mlx `LmConfig` of `tiny_checkpoint` (with its 4 extra heads)."""
    cfg = json.loads((tiny_checkpoint / CONFIG_NAME).read_text(encoding="utf-8"))
    return models.LmConfig.from_config_dict(cfg)


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 12 s of espeak-ng speech (English, French, English) with pauses, 22.05 kHz WAV."""
    from speech import write_speech

    def build(folder: Path) -> None:
        folder.mkdir()
        write_speech(folder / "speech.wav")

    return built_once(tmp_path_factory, "speech", build) / "speech.wav"


@pytest.fixture(scope="session")
def speech_blocks(speech_wav: Path) -> list:
    """`speech_wav` as the 1920-sample 24 kHz float32 blocks every source yields."""
    from voicevibe.audio import FileSource

    return list(FileSource(speech_wav, realtime=False).blocks())


@pytest.fixture(scope="session")
def tiny_plain(tiny_checkpoint_mlx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The MLX-named tiny checkpoint with its full-precision model.safetensors (no moshi_name)."""
    def build(folder: Path) -> None:
        folder.mkdir()
        for item in tiny_checkpoint_mlx.iterdir():
            (folder / item.name).symlink_to(item)
        (folder / "config.json").unlink()
        config = json.loads((tiny_checkpoint_mlx / "config.json").read_text())
        del config["moshi_name"]
        (folder / "config.json").write_text(json.dumps(config))

    return built_once(tmp_path_factory, "stt-tiny-plain", build)


@pytest.fixture(scope="module")
def virtual_mic(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A private PulseAudio null sink as the microphone (tests/pulse.py): nothing played = exact zeros.

    Fails, never skips, when it cannot start (but on macOS, where PulseAudio is not the sound system).
    """
    import pulse
    from platforms import PULSE, skip_on_mac

    skip_on_mac(PULSE)
    try:
        with pulse.virtual_mic(tmp_path_factory.mktemp("pulse")) as mic:
            yield mic
    except pulse.PulseError as e:
        pytest.fail(f"PulseAudio virtual microphone unavailable: {e}", pytrace=False)


@pytest.fixture(scope="module")
def module_engines(fast_checkpoint: Path) -> Iterator:
    """One `Engines` for a module's tests that are not about the workers' lifecycle: the speech worker
    (fast checkpoint) loads once, no brain worker (the fallback builder answers). Use `engines`."""
    from voicevibe.config_files import load_config
    from voicevibe.runtime.engines import Engines

    config = load_config(overrides=[{"stt": {"model": str(fast_checkpoint)}, "brain": {"model": "none"}}],
                         include_defaults_files=False)
    engines = Engines(config)
    engines.start()
    try:
        yield engines
    finally:
        engines.close()


@pytest.fixture
def engines(module_engines):  # noqa: ANN001, ANN201 - Engines, imported lazily
    """`module_engines`, its event queue emptied of what earlier tests left."""
    import queue

    while True:
        try:
            module_engines.events.get_nowait()
        except queue.Empty:
            return module_engines

