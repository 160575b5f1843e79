"""The window's right column, top: what reaches the screen. Panic and freeze, the transcript in large type,
the prompt history (click one to send it again), a typed prompt straight to the screen, the summary.

Panic and freeze follow the OSC sender's own state, whatever set it (a button, a key, MIDI, OSC
control in): the buttons are brought up to date at every poll.
"""

from __future__ import annotations

import tkinter as tk
import tkinter.font as tkfont
from collections.abc import Callable
from typing import Any

import customtkinter as ctk

from voicevibe.events import CueFired, Freeze, ImagePrompt, Panic, Phrase, PhraseEnd, SendPrompt, Summary, Word
from voicevibe.gui.host import WindowHost
from voicevibe.gui.widgets import (
    BLUE,
    FONT,
    FONT_BIG_BUTTON,
    FONT_SMALL,
    FONT_TRANSCRIPT,
    GREY,
    RED,
    SHORTCUTS,
    PromptList,
    title,
)

PAD = {"padx": 10, "pady": 3}
TRANSCRIPT_MAX_LINES = 400
PHRASE_MARK = "  ⏎\n"  # how a phrase end shows in the transcript
REASON_CHARS = 40  # a fallback's reason in the history: one line with the rest of the detail
TRANSCRIPT_LINES = 3  # the transcript always shows this many lines of its large type
TEXTBOX_INSET = 20  # a CTkTextbox's border, corners and spacing around its text, top and bottom
LOWER_HEIGHT = 260  # the show, summary and OSC area asks for this much; it scrolls when it gets less
FROZEN_BLUE = "#1f618d"
PANIC_RED = "#ff0000"


class ScreenPanel:
    """Panic, freeze, the transcript, the prompt history, the typed prompt and the summary."""

    def __init__(self, w: WindowHost, parent: tk.Misc, *, on_stage: Callable[[], None]) -> None:
        self.w = w
        ui = w.ui
        parent.grid_columnconfigure(0, weight=1)
        row = ctk.CTkFrame(parent, fg_color="transparent")
        row.grid(row=0, column=0, sticky="ew", **PAD)
        ui.panic_button = ctk.CTkButton(row, text="PANIC (Esc)", font=FONT_BIG_BUTTON, height=56, width=260,
                                        fg_color=RED, command=self.toggle_panic)
        ui.panic_button.pack(side="left")
        ui.freeze_button = ctk.CTkButton(row, text="Freeze (F)", font=FONT_BIG_BUTTON, height=56, width=180,
                                         fg_color=GREY, command=self.toggle_freeze)
        ui.freeze_button.pack(side="left", padx=10)
        ctk.CTkLabel(row, text=SHORTCUTS, font=FONT_SMALL, anchor="w",
                     justify="left").pack(side="left", padx=10)
        row = ctk.CTkFrame(parent, fg_color="transparent")
        row.grid(row=1, column=0, sticky="ew", **PAD)
        title(row, "Transcript").pack(side="left")
        ui.stage_button = ctk.CTkButton(row, text="Stage view (V)", font=FONT_SMALL, width=130, fg_color=GREY,
                                        command=on_stage)
        ui.stage_button.pack(side="right")
        # The transcript and the prompts ask for their minimum only and share what is left by weight, so their
        # room does not depend on what was filled first; the lower controls scroll (room_for_what_is_read).
        lines = tkfont.Font(font=ctk.CTkFont(*FONT_TRANSCRIPT)).metrics("linespace")
        ui.transcript = ctk.CTkTextbox(parent, font=FONT_TRANSCRIPT, wrap="word",
                                       height=TRANSCRIPT_LINES * lines + TEXTBOX_INSET)
        ui.transcript.grid(row=2, column=0, sticky="nsew", **PAD)
        title(parent, "Prompts (the newest on top; click one to send it again)").grid(row=3, column=0, sticky="ew",
                                                                                       **PAD)
        ui.prompts = PromptList(parent, on_click=self.resend)
        ui.prompts.grid(row=4, column=0, sticky="nsew", **PAD)
        row = ctk.CTkFrame(parent, fg_color="transparent")
        row.grid(row=5, column=0, sticky="ew", **PAD)
        ui.manual = ctk.CTkEntry(row, font=FONT, placeholder_text="type a prompt to send straight to the screen")
        ui.manual.pack(side="left", fill="x", expand=True)
        ui.manual.bind("<Return>", lambda _: self.send_manual())
        ctk.CTkButton(row, text="Send to screen", font=FONT, fg_color=BLUE,
                      command=self.send_manual).pack(side="left", padx=8)
        self.lower = ctk.CTkScrollableFrame(parent, height=LOWER_HEIGHT, fg_color="transparent")  # show, summary, OSC
        self.lower.grid(row=6, column=0, sticky="nsew", padx=0, pady=(0, 4))
        self.lower.grid_columnconfigure(0, weight=1)
        ui.summary = ctk.CTkLabel(self.lower, text="", font=FONT_SMALL, anchor="w", wraplength=760, justify="left")
        ui.summary.grid(row=1, column=0, sticky="ew", **PAD)
        parent.grid_rowconfigure(2, weight=3, minsize=ui.transcript.winfo_reqheight() + 2 * PAD["pady"])
        parent.grid_rowconfigure(4, weight=3, minsize=ui.prompts.min_height() + 2 * PAD["pady"])
        parent.grid_rowconfigure(6, weight=1)
        self._shown = (False, False)  # (panic, freeze) as the buttons show them
        self.version = 0  # counts what the stage view shows: the words and the prompt
        self.latest_prompt = ""

    # ---------- controls ----------

    @property
    def panicked(self) -> bool:
        """Panic holds the screen (the sender's state)."""
        return bool(self.w.controls.osc.panicked)

    @property
    def frozen(self) -> bool:
        """Freeze holds the screen (the sender's state)."""
        return bool(self.w.controls.osc.frozen)

    def toggle_panic(self) -> None:
        """Panic: the safe prompt at once and nothing else until released (a second press)."""
        self.w.command(Panic(not self.panicked))
        self.refresh()

    def toggle_freeze(self) -> None:
        """Freeze the screen (nothing new sent), or release it (the newest prompt goes out)."""
        self.w.command(Freeze(not self.frozen))
        self.refresh()

    def send_manual(self, text: str | None = None) -> None:
        """Send a typed prompt straight to the screen, bypassing the brain."""
        text = (self.w.ui.manual.get() if text is None else text).strip()
        if text:
            self.w.command(SendPrompt(text))
            self.w.ui.manual.delete(0, "end")
            self._prompt_shown(text)

    def resend(self, prompt: ImagePrompt) -> None:
        """Send a past prompt again (a click in the history)."""
        self.w.command(SendPrompt(prompt.text))
        self._prompt_shown(prompt.text)

    def _prompt_shown(self, text: str) -> None:
        self.latest_prompt = text
        self.version += 1

    def latest_lines(self) -> str:
        """The transcript's last two lines (the phrase being spoken, or the last one): for the stage view."""
        return str(self.w.ui.transcript.get("end-1c linestart -1 lines", "end-1c"))

    def refresh(self) -> None:
        """The panic and freeze buttons follow the sender (called at every poll; cheap when nothing changed)."""
        state = (self.panicked, self.frozen)
        if state == self._shown:
            return
        self._shown = state
        panicked, frozen = state
        ui = self.w.ui
        ui.panic_button.configure(text="PANIC ON - release (Esc)" if panicked else "PANIC (Esc)",
                                  fg_color=PANIC_RED if panicked else RED)
        ui.freeze_button.configure(text="FROZEN (F)" if frozen else "Freeze (F)",
                                   fg_color=FROZEN_BLUE if frozen else GREY)

    # ---------- events ----------

    def show_word(self, word: Word) -> None:
        """Append a word piece to the transcript."""
        box = self.w.ui.transcript
        box.insert("end", word.text.lstrip() if _at_line_start(box) else word.text)
        box.see("end")
        self.version += 1

    def show_phrase_end(self, _: PhraseEnd | None) -> None:
        """Mark a phrase end and start a new line (the oldest lines go past TRANSCRIPT_MAX_LINES)."""
        box = self.w.ui.transcript
        box.insert("end", PHRASE_MARK)
        lines = int(box.index("end-1c").split(".")[0])
        if lines > TRANSCRIPT_MAX_LINES:
            box.delete("1.0", f"{lines - TRANSCRIPT_MAX_LINES}.0")
        box.see("end")
        self.version += 1

    def show_phrase(self, phrase: Phrase) -> None:
        """A typed phrase in the transcript, as a line of its own (spoken ones arrive word by word)."""
        if phrase.reason == "typed":
            box = self.w.ui.transcript
            if not _at_line_start(box):
                box.insert("end", "\n")  # a spoken phrase was still open
            box.insert("end", f"{phrase.text} (typed)")
            self.show_phrase_end(None)

    def show_prompt(self, prompt: ImagePrompt) -> None:
        """Add a prompt to the history with its source (and why the fallback made it), latency and style."""
        model = f" {prompt.model}" if prompt.model and prompt.source == "model" else ""
        reason = prompt.reason if len(prompt.reason) <= REASON_CHARS else prompt.reason[:REASON_CHARS - 1] + "…"
        why = f" ({reason})" if reason else ""  # the whole reason is in the session log
        self.w.ui.prompts.add(prompt, f"{prompt.source}{model}{why} · {prompt.latency_ms:.0f} ms · {prompt.style}")
        self._prompt_shown(prompt.text)

    def show_cue(self, cue: CueFired) -> None:
        """A fired cue in the prompt history (click it to send its prompt again)."""
        seed = f" · seed {cue.seed}" if cue.seed is not None else ""
        heard = f' "{cue.heard}"' if cue.heard else ""
        what = "to the brain" if cue.phrase else "sent" if cue.sent else "not sent (panic, freeze or no target)"
        self.w.ui.prompts.add(ImagePrompt(cue.text, cue.name, "", "", "cue"),
                              f"cue {cue.number} {cue.name} · {cue.via}{heard}{seed} · {what}")
        if cue.sent:
            self._prompt_shown(cue.text)

    def show_summary(self, summary: Summary) -> None:
        """The slow brain's view of the session."""
        self.w.ui.summary.configure(text=f"Summary: {summary.text}")

    def views(self) -> dict[type, Callable[[Any], None]]:
        """The events this panel shows."""
        return {Word: self.show_word, PhraseEnd: self.show_phrase_end, Phrase: self.show_phrase,
                ImagePrompt: self.show_prompt, CueFired: self.show_cue, Summary: self.show_summary}


def _at_line_start(box: ctk.CTkTextbox) -> bool:
    """True when the transcript is empty or its last line is finished."""
    return box.get("end-2c", "end-1c") in ("", "\n")
