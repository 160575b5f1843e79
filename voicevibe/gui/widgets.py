"""Building blocks of the performance window: fonts, level meters, labelled sliders, prompt history.

Everything here runs on the Tk thread only; the window (gui.py) feeds these widgets from its
after()-polled event queue.
"""

from __future__ import annotations

import math
import time
import tkinter as tk
import tkinter.font as tkfont
from collections.abc import Callable

import customtkinter as ctk

from voicevibe.events import ImagePrompt, TargetStatus

# Readable from two metres on a dim stage: big type for what the operator watches.
FONT = ("Helvetica", 17)
FONT_SMALL = ("Helvetica", 14)
FONT_TITLE = ("Helvetica", 18, "bold")
FONT_TRANSCRIPT = ("Helvetica", 28)
FONT_PROMPT = ("Helvetica", 20)
FONT_BIG_BUTTON = ("Helvetica", 22, "bold")

GREEN, RED, AMBER, GREY, BLUE = "#2e9e4f", "#c0392b", "#d68910", "#5d6d7e", "#2471a3"
METER_FLOOR_DB = -60.0  # the meters' left edge; silence sits here
SHORTCUTS = "Space start/stop · F freeze\nEsc panic · V stage view\n1-9, PgDn/PgUp cues"  # three short lines
MAX_PROMPTS = 40  # prompt buttons kept in the history pane (oldest removed)
PROMPTS_SHOWN = 3  # the history always has room for this many of the newest prompts
ENTRY_PADDING, ENTRY_GAP = 8, 3  # a prompt button's padding around its text, and the gap between two
LIST_INSET = 8  # a CTkScrollableFrame's own margin inside its canvas


def db_to_linear(db: float) -> float:
    """10^(dB/20)."""
    return 10.0 ** (db / 20.0)


def dbfs(linear: float) -> float:
    """Linear amplitude (full scale 1) in dBFS; -inf for silence."""
    return 20.0 * math.log10(linear) if linear > 0 else -math.inf


def format_dbfs(linear: float) -> str:
    """`-12.3 dBFS`, or `-inf dBFS` for silence."""
    value = dbfs(linear)
    return "-inf dBFS" if math.isinf(value) else f"{value:.1f} dBFS"


def meter_fraction(linear: float) -> float:
    """Where a level sits on a meter scaled from METER_FLOOR_DB to 0 dBFS (0..1)."""
    value = dbfs(linear)
    if math.isinf(value):
        return 0.0
    return min(1.0, max(0.0, (value - METER_FLOOR_DB) / -METER_FLOOR_DB))


def title(master: tk.Misc, text: str) -> ctk.CTkLabel:
    """A section heading."""
    return ctk.CTkLabel(master, text=text, font=FONT_TITLE, anchor="w")


class LevelMeter(ctk.CTkFrame):
    """One meter row: a name, a bar for the peak (dBFS scale), peak and RMS in numbers."""

    def __init__(self, master: tk.Misc, name: str) -> None:
        super().__init__(master, fg_color="transparent")
        ctk.CTkLabel(self, text=name, font=FONT, width=60, anchor="w").pack(side="left")
        self.bar = ctk.CTkProgressBar(self, height=18, width=220, progress_color=GREEN)
        self.bar.set(0.0)
        self.bar.pack(side="left", padx=6)
        self.text = ctk.CTkLabel(self, text="", font=FONT_SMALL, width=260, anchor="w")
        self.text.pack(side="left")
        self.show(0.0, 0.0)

    def show(self, peak: float, rms: float) -> None:
        """Display one block's peak and RMS (linear)."""
        self.bar.set(meter_fraction(peak))
        self.bar.configure(progress_color=RED if peak >= 0.99 else GREEN)
        self.text.configure(text=f"peak {format_dbfs(peak)}   rms {format_dbfs(rms)}")


class SliderRow(ctk.CTkFrame):
    """A named slider with its value shown through `describe`; `on_change` gets each new value."""

    def __init__(self, master: tk.Misc, name: str, lo: float, hi: float, value: float, *,
                 describe: Callable[[float], str], on_change: Callable[[float], None],
                 steps: int | None = None, snap: Callable[[float], float] = lambda v: v) -> None:
        super().__init__(master, fg_color="transparent")
        self.describe, self.on_change, self.snap = describe, on_change, snap
        ctk.CTkLabel(self, text=name, font=FONT, width=110, anchor="w").pack(side="left")
        self.slider = ctk.CTkSlider(self, from_=lo, to=hi, number_of_steps=steps, width=260,
                                    command=self._moved)
        self.slider.pack(side="left", padx=6)
        self.label = ctk.CTkLabel(self, text="", font=FONT_SMALL, width=230, anchor="w")
        self.label.pack(side="left")
        self.value = snap(value)
        self.slider.set(self.value)
        self.label.configure(text=describe(self.value))

    def _moved(self, raw: float) -> None:
        value = self.snap(float(raw))
        if value == self.value:
            return
        self.value = value
        self.label.configure(text=self.describe(value))
        self.on_change(value)

    def set(self, value: float) -> None:
        """Move the slider as if the operator had (calls on_change when the value changes)."""
        self.slider.set(value)
        self._moved(value)


def wrap_button_text(button: ctk.CTkButton, width: int) -> None:
    """Let a button's text wrap at `width` pixels. CTkButton has no wraplength option, so this sets it on
    its private `_text_label`: the one place that does, for customtkinter 6.0.0 (pinned)."""
    button._text_label.configure(wraplength=width, justify="left")


class PromptList(ctk.CTkScrollableFrame):
    """The prompt history, newest on top; clicking an entry hands its prompt to `on_click`."""

    def __init__(self, master: tk.Misc, on_click: Callable[[ImagePrompt], None]) -> None:
        super().__init__(master, label_text="", height=self.min_height())
        self.on_click = on_click
        self.entries: list[tuple[ImagePrompt, ctk.CTkButton]] = []  # (prompt, button), oldest first

    @staticmethod
    def min_height() -> int:
        """Room for the newest PROMPTS_SHOWN entries of two lines (the prompt, its detail), in pixels."""
        line = tkfont.Font(font=ctk.CTkFont(*FONT_PROMPT)).metrics("linespace")
        return PROMPTS_SHOWN * (2 * line + ENTRY_PADDING + 2 * ENTRY_GAP) + LIST_INSET

    def add(self, prompt: ImagePrompt, detail: str) -> ctk.CTkButton:
        """Show a prompt (an ImagePrompt, or anything with `.text`) with a detail line."""
        button = ctk.CTkButton(self, text=f"{prompt.text}\n{detail}", font=FONT_PROMPT, anchor="w",
                               fg_color="#1f2a36", hover_color="#2c3e50",
                               command=lambda p=prompt: self.on_click(p))
        width = self._parent_canvas.winfo_width()
        wrap_button_text(button, width - 40 if width > 340 else 640)  # the list's width once it is drawn
        if self.entries:
            button.pack(fill="x", pady=ENTRY_GAP, padx=2, before=self.entries[-1][1])
        else:
            button.pack(fill="x", pady=ENTRY_GAP, padx=2)
        self.entries.append((prompt, button))
        while len(self.entries) > MAX_PROMPTS:
            _, oldest = self.entries.pop(0)
            oldest.destroy()
        return button


class TargetRows(ctk.CTkFrame):
    """Per-OSC-target status lines: sent, errors, last send, last error."""

    def __init__(self, master: tk.Misc) -> None:
        super().__init__(master, fg_color="transparent", height=4)  # grows with its lines
        self.rows: dict[str, ctk.CTkLabel] = {}
        self.statuses: dict[str, TargetStatus] = {}

    def update_status(self, status: TargetStatus) -> None:
        """Record a TargetStatus and redraw its line."""
        self.statuses[status.target] = status
        self.refresh()

    def refresh(self, now: float | None = None) -> None:
        """Redraw every line (ages change as time passes)."""
        now = time.monotonic() if now is None else now
        for target, s in self.statuses.items():
            label = self.rows.get(target)
            if label is None:
                label = self.rows[target] = ctk.CTkLabel(self, font=FONT_SMALL, anchor="w", justify="left")
                label.pack(fill="x")
            last = "never" if s.last_send is None else f"{max(0.0, now - s.last_send):.0f} s ago"
            text = f"{target}: sent {s.sent}, errors {s.errors}, last send {last}"
            if s.last_error:
                text += f"\n   last error: {s.last_error}"
            if s.failing:
                text = "FAILING  " + text
            label.configure(text=text, text_color=RED if s.failing else AMBER if s.errors else "gray85")
