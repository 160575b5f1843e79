"""A private Xvfb X server for window tests (apt package xvfb), started and stopped here."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

SCREEN = "1920x1200x24"  # holds every screen size the window tests pretend (up to 1920x1080)
START_TIMEOUT_S = 20.0


class XvfbError(RuntimeError):
    """Xvfb could not start; the message says what to install."""


@contextmanager
def xvfb(screen: str = SCREEN) -> Iterator[str]:
    """Run Xvfb on a free display number (it picks one: -displayfd); yields ':N'."""
    if shutil.which("Xvfb") is None:
        raise XvfbError("Xvfb not found: apt-get install xvfb (scripts/setup.sh --test does)")
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", screen, "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        with os.fdopen(read) as fh:
            number = fh.readline().strip()  # Xvfb writes the display number once it accepts clients
        if not number:
            raise XvfbError(f"Xvfb exited (code {proc.poll()}) before opening a display")
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(START_TIMEOUT_S)
