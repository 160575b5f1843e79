"""Helpers for window tests: a private X display, a guard on Tk calls off the main thread, pumping Tk."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import customtkinter as ctk
import pytest

from support.platforms import XVFB, skip_on_mac
from support.xvfb import xvfb
from voicevibe.config import Config
from voicevibe.gui.window import PerformanceWindow

PUMP_TIMEOUT_S = 120.0  # a deadline for something that must happen, not a speed check


class MainThreadOnly:
    """Wraps a Tk interpreter: any call from a thread other than the main one is recorded and refused."""

    def __init__(self, tkapp: Any, violations: list[str]) -> None:
        self._tkapp, self._violations = tkapp, violations

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._tkapp, name)
        if not callable(attr):
            return attr

        def guarded(*args: Any, **kwargs: Any) -> Any:
            thread = threading.current_thread()
            if thread is not threading.main_thread():
                self._violations.append(f"Tk {name}{args[:4]!r} from thread {thread.name!r}")
                raise RuntimeError(f"Tk called from thread {thread.name!r}")
            return attr(*args, **kwargs)

        return guarded


@pytest.fixture(scope="session")
def display() -> Iterator[str]:
    """A private Xvfb display for the whole session, as $DISPLAY (the window tests skip on macOS)."""
    skip_on_mac(XVFB)
    old = os.environ.get("DISPLAY")
    with xvfb() as name:
        os.environ["DISPLAY"] = name
        ctk.set_appearance_mode("dark")
        try:
            yield name
        finally:
            if old is None:
                os.environ.pop("DISPLAY", None)
            else:
                os.environ["DISPLAY"] = old


@pytest.fixture
def guard() -> Iterator[list[str]]:
    """Collects Tk calls made off the main thread; the test fails if there are any."""
    violations: list[str] = []
    yield violations
    assert not violations, "Tk touched off the main thread:\n" + "\n".join(violations)


_guards: list[list[str]] = []


@contextmanager
def window_for(config: Config, violations: list[str] | None = None, **kwargs: Any) -> Iterator[PerformanceWindow]:
    """A PerformanceWindow on a fresh root whose Tk interpreter is guarded; closed afterwards."""
    root = ctk.CTk()
    root.tk = MainThreadOnly(root.tk, violations if violations is not None else [])
    window = PerformanceWindow(config, root, **kwargs)
    pump(root)
    try:
        yield window
    finally:
        window.close()


def pump(root: ctk.CTk, until: Callable[[], object] | None = None, *, timeout: float = PUMP_TIMEOUT_S) -> None:
    """Run Tk's event loop for a moment, or until `until()` is true (failing after `timeout`)."""
    deadline = time.monotonic() + timeout
    rounds = 0
    while True:
        root.update()
        rounds += 1
        if until is None and rounds >= 5:
            return
        if until is not None and until():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting after {timeout:.0f} s")
        time.sleep(0.02)
