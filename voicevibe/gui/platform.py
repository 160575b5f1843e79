"""What the window does per platform: fit the screen, close cleanly on Cmd-Q, scroll with a Tk 9 trackpad.

- **Size.** The window prefers 1500x940, more than a 13-inch MacBook Air shows (its default
  "looks like" is 1440x900 or 1470x956, less the menu bar and the Dock). `fit_window` shrinks it
  to the screen; the transcript and the prompt history keep their minimum (gui/screen.py), the
  show, summary and OSC area below them gives up the height and scrolls, the status bar and the
  panic row keep theirs, and the left column narrows; it stays scrollable.
- **Cmd-Q.** Unless Tcl has a `::tk::mac::Quit` command, Tk answers the Quit Apple Event with
  `Tcl_Exit(0)`: no engine stop, no log close, no settings saved. `handle_quit` defines it.
- **Trackpad under Tk 9** (Homebrew's python-tk): Tk 9 sends trackpad scrolls as
  `<TouchpadScroll>`, which CTkScrollableFrame does not bind (CustomTkinter #2858); `TouchpadScroller`
  scrolls the frame under the pointer. Tk 8.6 has no such event and sends `<MouseWheel>`.
"""

from __future__ import annotations

import logging
import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import customtkinter as ctk

log = logging.getLogger(__name__)

PREFERRED = (1500, 940)
MINIMUM = (960, 600)  # below this the window cannot be made smaller; panic and the status bar still show
SIDE_MARGIN = 20
TOP_MARGIN = 40  # the menu bar: 24 pt, taller on notched MacBooks
BOTTOM_MARGIN = 90  # a Dock at the bottom (its size is the user's choice)
LEFT_COLUMN = (480, 640)  # the scrollable controls column, narrowest and widest
LEFT_SHARE = 0.43


@dataclass(frozen=True)
class Fit:
    """Where the window goes and how wide its left column is."""

    width: int
    height: int
    x: int
    y: int
    left_width: int

    @property
    def geometry(self) -> str:
        """The Tk geometry string."""
        return f"{self.width}x{self.height}+{self.x}+{self.y}"


def fit_window(screen_width: int, screen_height: int) -> Fit:
    """The window's size and place on a screen of this size (in Tk's points)."""
    width = max(min(PREFERRED[0], screen_width - 2 * SIDE_MARGIN), min(MINIMUM[0], screen_width))
    height = max(min(PREFERRED[1], screen_height - TOP_MARGIN - BOTTOM_MARGIN), min(MINIMUM[1], screen_height))
    x = max(0, (screen_width - width) // 2)
    y = min(TOP_MARGIN, max(0, screen_height - height))
    left = round(min(LEFT_COLUMN[1], max(LEFT_COLUMN[0], width * LEFT_SHARE)))
    return Fit(width, height, x, y, left)


def handle_quit(root: Any, close: Callable[[], None]) -> None:
    """Cmd-Q (and Quit from the Dock, logout, shutdown) runs `close` instead of Tcl_Exit(0).

    Defined on every platform: elsewhere nothing calls it, and tests call it to play Cmd-Q.
    """
    root.createcommand("::tk::mac::Quit", close)


def touchpad_deltas(packed: int) -> tuple[int, int]:
    """Tk 9's %D of a <TouchpadScroll>: X delta in the high 16 bits, Y in the low 16, both signed."""
    raw = packed & 0xFFFFFFFF

    def signed(value: int) -> int:
        return value - 0x10000 if value >= 0x8000 else value

    return signed((raw >> 16) & 0xFFFF), signed(raw & 0xFFFF)


class TouchpadScroller:
    """Scrolls the CTkScrollableFrame under the pointer by the trackpad's pixel deltas (Tk 9)."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.bound = False

    def bind(self) -> bool:
        """Listen for <TouchpadScroll>; False on Tk 8.6, which has no such event (nothing to do there)."""
        try:
            self.root.bind_all("<TouchpadScroll>", self.on_scroll, add="+")
        except tk.TclError as e:
            log.debug("no <TouchpadScroll> in Tk %s: %s", tk.TkVersion, e)
            return False
        self.bound = True
        return True

    def on_scroll(self, event: Any) -> str | None:
        """Scroll the frame under the pointer (not a text box or slider: they scroll themselves)."""
        dx, dy = touchpad_deltas(int(event.delta))
        if dy == 0:
            return None
        try:
            widget = self.root.winfo_containing(event.x_root, event.y_root)
        except (tk.TclError, KeyError):  # a menu or a widget Tkinter did not create
            return None
        canvas = self.canvas_for(widget)
        if canvas is None:
            return None
        top, bottom = canvas.yview()
        if (top, bottom) == (0.0, 1.0):
            return None  # everything already shows
        box = canvas.bbox("all")
        content = (box[3] - box[1]) if box else 0
        if content <= 0:
            return None
        canvas.yview_moveto(max(0.0, top - dy / content))
        return "break"

    @staticmethod
    def canvas_for(widget: Any) -> Any:
        """The canvas of the CTkScrollableFrame that holds `widget`, or None."""
        while widget is not None:
            if isinstance(widget, (ctk.CTkTextbox, ctk.CTkSlider, ctk.CTkScrollbar)):
                return None
            if isinstance(widget, ctk.CTkScrollableFrame):
                return widget._parent_canvas  # noqa: SLF001 (CTk keeps its canvas private; 6.0.0 is pinned)
            widget = getattr(widget, "master", None)
        return None
