"""The show's threads still running, counting only those started during the current test.

Under pytest-xdist one process runs tests of several modules in turn, so a thread another test
left finishing (or a module's shared engines) must not count against this one; conftest marks
the start of every test.
"""

from __future__ import annotations

import threading

STAGE_THREADS = {"audio", "script", "phrases", "health", "outbox", "stt-link", "brain-link", "supervisor"}
_at_start: set[threading.Thread] = set()


def mark_test_start() -> None:
    """Remember the threads alive now: they are not this test's."""
    _at_start.clear()
    _at_start.update(threading.enumerate())


def stage_threads() -> set[str]:
    """Names of the stage threads started since the test began that are still alive."""
    return {t.name for t in threading.enumerate() if t not in _at_start} & STAGE_THREADS
