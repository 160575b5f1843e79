"""What a panel of the performance window may use of the window: a small protocol, so no panel imports it.

The window (gui/window.py) builds its panels with itself as their host. A panel sends the operator's
commands with `command` (any thread: the controls' one path), keeps a changed setting for the next
launch with `remember` (Tk thread), and says something on the status bar's message line.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Protocol

import customtkinter as ctk

from voicevibe.config import Config
from voicevibe.events import Command, Status
from voicevibe.gui.platform import Fit
from voicevibe.runtime.controls import Controls


class WindowHost(Protocol):
    """The window as its panels see it."""

    root: ctk.CTk
    config: Config  # the settings now, with what the operator changed
    fit: Fit  # the window's size on this screen
    controls: Controls  # commands, the OSC sender, show control, the engines
    ui: SimpleNamespace  # every panel's widgets by name (a MIDI knob moves a slider of another panel)

    def command(self, command: Command) -> None:
        """Carry out an operator's command (any thread)."""

    def remember(self, section: str, key: str, value: str | float | bool | None) -> None:
        """A setting the operator changed: applied to `config` and saved shortly (Tk thread)."""

    def show_message(self, text: str, level: str = "info") -> None:
        """The status bar's message line (Tk thread)."""

    def on_status(self, status: Status) -> None:
        """A Status: its part of the status bar, and the message line for problems (Tk thread)."""
