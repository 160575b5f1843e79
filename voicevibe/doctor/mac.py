"""`voicevibe doctor`'s first-night checks for a Mac: where VoiceVibe is installed, and the Xcode command line tools.

Both are warnings (the show can start from a terminal either way): a checkout or virtualenv in a
folder macOS protects (Documents, Desktop, Downloads, iCloud Drive) makes the .app's first launch ask
for that folder on behalf of Python, and "Don't Allow" breaks its imports; without the command line
tools llama-cpp-python (source-only on macOS) cannot be rebuilt and the .app's launcher not compiled.
On other systems neither check has anything to say.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import voicevibe
from voicevibe.doctor.rows import Row
from voicevibe.pycheck import place_problem


class MacProbe(Protocol):
    """What these checks read of doctor's Probe (tests replace each)."""

    @property
    def platform(self) -> str:
        """The platform judged."""

    @property
    def install_places(self) -> Callable[[], dict[str, Path]]:
        """`install_places`, or a stand-in."""

    @property
    def xcode_tools(self) -> Callable[[], str | None]:
        """`xcode_tools`, or a stand-in."""


XCODE_FIX = "run `xcode-select --install` (a dialog opens), then `make run` again if llama-cpp-python must be built"


def install_places() -> dict[str, Path]:
    """The folders a launch reads: the checkout (VoiceVibe's code) and the virtualenv (its Python)."""
    return {"checkout": Path(voicevibe.__file__).resolve().parents[1], "virtualenv": Path(sys.prefix).resolve()}


def check_install_folder(probe: MacProbe) -> list[Row]:
    """On a Mac: neither the checkout nor the virtualenv in a folder macOS protects."""
    if probe.platform != "darwin":
        return []
    home = os.path.expanduser("~")
    places = probe.install_places()
    rows: list[Row] = []
    flagged: list[Path] = []
    for what, path in places.items():
        found = place_problem(probe.platform, str(path), home)
        if found is not None and not any(path.is_relative_to(f) for f in flagged):  # a .venv inside: said once
            flagged.append(path)
            rows.append(Row("install folder", False, f"the {what}: {found[0]}", found[1], needed=False))
    return rows or [Row("install folder", True, f"{', '.join(map(str, places.values()))}: not in a folder macOS "
                        "protects (Documents, Desktop, Downloads, iCloud Drive)")]


def xcode_tools() -> str | None:
    """The command line tools' folder (`xcode-select -p`), None when they are not installed."""
    tool = shutil.which("xcode-select")
    if tool is None:
        return None
    try:
        done = subprocess.run([tool, "-p"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    folder = done.stdout.strip()
    return folder if done.returncode == 0 and folder and Path(folder).is_dir() else None


def check_xcode_tools(probe: MacProbe) -> list[Row]:
    """On a Mac: the Xcode command line tools (llama-cpp-python is built from source; the .app's launcher too)."""
    if probe.platform != "darwin":
        return []
    folder = probe.xcode_tools()
    if folder is None:
        return [Row("Xcode tools", False, "the Xcode command line tools are not installed: llama-cpp-python 0.3.36 "
                    "has no macOS wheel and is built from source, and the .app's launcher is compiled", XCODE_FIX,
                    needed=False)]
    return [Row("Xcode tools", True, f"command line tools in {folder}")]
