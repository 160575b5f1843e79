"""The stage view: a confidence monitor for the performer, in a second borderless window.

It shows only the latest words and the current prompt, in very large white and yellow type on
black, readable from across a stage. The operator drags it (anywhere in it) to another display,
double-clicks it (or presses Return in it) to fill that display, and closes it with the window's
Stage view button or the V key (in either window). It draws only when the words or the prompt
changed (the screen panel's `version`), so an open stage view costs the Tk loop next to nothing
(bench/gui_lag.py, bench/RESULTS-gui.md).
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable

import customtkinter as ctk

WORDS_FONT = ("Helvetica", 56, "bold")
PROMPT_FONT = ("Helvetica", 36)
WORDS_COLOUR, PROMPT_COLOUR, BACKGROUND = "#ffffff", "#ffd54f", "#000000"
SIZE = (1100, 560)  # its first size; dragged and made full screen from there
MARGIN = 40
WORDS_SHOWN = 12  # the latest words only: the end of the line being spoken
WORDS_SHARE = 0.55  # of the height; the prompt has the rest (each keeps its share, whatever its length)


def latest_words(text: str, limit: int = WORDS_SHOWN) -> str:
    """The last `limit` words of the transcript's current phrase (or the last phrase, between two)."""
    lines = [line.strip().removesuffix("(typed)") for line in text.replace("⏎", "").splitlines() if line.strip()]
    words = lines[-1].split() if lines else []
    return ("… " if len(words) > limit else "") + " ".join(words[-limit:])


class StageView:
    """The second window; the window calls `show` when `shown` is behind the screen panel's version."""

    def __init__(self, root: ctk.CTk, *, on_key: Callable[[tk.Event], str | None]) -> None:
        self.root = root
        self.top = tk.Toplevel(root, background=BACKGROUND)
        self.top.title("VoiceVibe stage view")
        self.top.overrideredirect(True)  # borderless: no title bar on the performer's screen
        self.top.geometry(f"{SIZE[0]}x{SIZE[1]}+{root.winfo_rootx() + 60}+{root.winfo_rooty() + 60}")
        self.words = tk.Label(self.top, text="", font=WORDS_FONT, fg=WORDS_COLOUR, bg=BACKGROUND, anchor="sw",
                              justify="left", wraplength=SIZE[0] - 2 * MARGIN)
        self.words.place(x=MARGIN, y=MARGIN // 2, relwidth=1.0, width=-2 * MARGIN, relheight=WORDS_SHARE,
                         height=-MARGIN // 2)
        self.prompt = tk.Label(self.top, text="", font=PROMPT_FONT, fg=PROMPT_COLOUR, bg=BACKGROUND, anchor="nw",
                               justify="left", wraplength=SIZE[0] - 2 * MARGIN)
        self.prompt.place(x=MARGIN, rely=WORDS_SHARE, relwidth=1.0, width=-2 * MARGIN, relheight=1 - WORDS_SHARE,
                          height=-MARGIN // 2)
        self.full = False
        self.shown = -1  # the screen panel's version drawn last
        self._drag = (0, 0)
        self._normal = self.top.geometry()
        for widget in (self.top, self.words, self.prompt):
            widget.bind("<ButtonPress-1>", self._grab)
            widget.bind("<B1-Motion>", self._move)
            widget.bind("<Double-Button-1>", lambda _: self.toggle_full())
        self.top.bind("<Configure>", self._resized)
        self.top.bind("<Return>", lambda _: self.toggle_full())
        self.top.bind("<Key>", on_key)  # V, Esc (panic) and F (freeze) work with this window in front too

    def show(self, version: int, words: str, prompt: str) -> None:
        """Draw the latest words and the current prompt (`version`: the screen panel's, now drawn)."""
        self.shown = version
        self.words.configure(text=latest_words(words))
        self.prompt.configure(text=prompt)

    def toggle_full(self) -> None:
        """Fill the display the view is on, or go back to its window size."""
        if self.full:
            self.top.geometry(self._normal)
        else:
            self._normal = self.top.geometry()
            width, height = self.top.winfo_screenwidth(), self.top.winfo_screenheight()
            left = max(0, self.top.winfo_rootx() + SIZE[0] // 2) // width * width  # displays side by side
            self.top.geometry(f"{width}x{height}+{left}+0")
        self.full = not self.full

    def close(self) -> None:
        """Close the view."""
        self.top.destroy()

    def _grab(self, event: tk.Event) -> None:
        self._drag = (event.x_root - self.top.winfo_rootx(), event.y_root - self.top.winfo_rooty())

    def _move(self, event: tk.Event) -> None:
        if not self.full:
            self.top.geometry(f"+{event.x_root - self._drag[0]}+{event.y_root - self._drag[1]}")

    def _resized(self, event: tk.Event) -> None:
        if event.widget is self.top:
            wrap = max(200, event.width - 2 * MARGIN)
            if int(self.words.cget("wraplength")) != wrap:
                self.words.configure(wraplength=wrap)
                self.prompt.configure(wraplength=wrap)
