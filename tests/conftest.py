"""The suite's setup: shared fixtures (defined once, in tests/support/), every test's private user folders,
and the two test processes' serial group.

Helpers live in tests/support/; a test module imports helpers from there, never from another test module.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.threads import mark_test_start

pytest_plugins = ["support.builds", "support.shows", "support.osc", "support.gui", "support.pulse",
                  "support.standin", "support.hubserver", "support.midi"]

REAL_CACHE = Path.home() / ".cache"  # models and the assembled bundled GGUF stay shared between tests
# Fixtures for one shared resource: the tests using them run in the serial group, as do the `timing` tests.
SERIAL_FIXTURES = {"display", "virtual_mic", "midi_ports"}


def is_serial(item: pytest.Item) -> bool:
    """A test that uses one shared resource (a display, the virtual mic, the MIDI system) or measures time."""
    shared = SERIAL_FIXTURES & set(getattr(item, "fixturenames", ()))
    return bool(shared) or item.get_closest_marker("timing") is not None


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
    """Threads alive before the test are not its own (support/threads.py)."""
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



