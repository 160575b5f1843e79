"""Tests that need Linux by nature (PulseAudio, Xvfb, xdotool, .desktop entries) skip on macOS only.

On Linux and in CI they always run: a missing tool there is a failure that names the package
(scripts/setup.sh --test installs them), never a skip. On a Mac the reason is printed (pytest -ra).
"""

from __future__ import annotations

import sys

import pytest

ON_MAC = sys.platform == "darwin"
PULSE = "the virtual microphone is a PulseAudio null sink, which macOS does not have"
XVFB = "window tests run on a private Xvfb X server; on macOS Tk draws with Aqua, not X11"
DESKTOP = "the .desktop launcher is a Linux (freedesktop.org) entry, opened with xdotool under Xvfb"


def linux_only(why: str) -> pytest.MarkDecorator:
    """Mark a test that needs Linux: skipped on macOS (with `why`), run everywhere else."""
    return pytest.mark.skipif(ON_MAC, reason=f"Linux only: {why}")


def skip_on_mac(why: str) -> None:
    """In a fixture: skip the tests that use it on macOS, with `why`."""
    if ON_MAC:
        pytest.skip(f"Linux only: {why}")
