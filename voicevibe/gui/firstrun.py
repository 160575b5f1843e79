"""The window's first-launch strip: which models are missing, how big, a Download button and its progress.

It shows only when a model the config names is not on disk (firstrun.missing_models, no
network). The download runs in firstrun.ModelDownload's thread; this strip drains its queue from
the window's poll, on the Tk thread. When the files are in, the model workers that need them
start again (`Engines.reload`), and the strip goes away. Script mode and typed phrases work
all along: the brain falls back to the bundled model, and no speech model is needed for them.
"""

from __future__ import annotations

import logging
import queue
from typing import Any

import customtkinter as ctk

from voicevibe.events import DownloadDone, DownloadProgress
from voicevibe.firstrun import MissingModel, ModelDownload, human_size, missing_models
from voicevibe.gui.host import WindowHost
from voicevibe.gui.widgets import AMBER, BLUE, FONT, FONT_SMALL, RED
from voicevibe.macos import on_mac

log = logging.getLogger(__name__)

EVENTS_PER_POLL = 50


def missing_text(missing: list[MissingModel]) -> str:
    """What the strip says: each missing model with its files and size, and what works meanwhile."""
    where = "this Mac" if on_mac() else "this computer"
    lines = [f"Not on {where} yet: " + "; ".join(m.describe() for m in missing) + "."]
    if any(not m.downloadable for m in missing):
        lines += [m.problem for m in missing if not m.downloadable]
    lines.append("Script mode and typed phrases work meanwhile"
                 + (" (the bundled small brain model makes the prompts)." if any(m.role == "brain" for m in missing)
                    else "."))
    return "\n".join(lines)


class ModelsStrip:
    """The first-launch strip at the top of the window (absent when every model is on disk)."""

    def __init__(self, window: WindowHost, root: ctk.CTk, *, row: int = 0) -> None:
        self.window = window
        self.missing = missing_models(window.config)
        self.download: ModelDownload | None = None
        self.events: queue.Queue = queue.Queue()
        self.frame: Any = None
        if not self.missing:
            return
        self.frame = ctk.CTkFrame(root, border_width=2, border_color=AMBER)
        self.frame.grid(row=row, column=0, columnspan=2, sticky="ew", padx=8, pady=(8, 0))
        self.frame.grid_columnconfigure(0, weight=1)
        self.label = ctk.CTkLabel(self.frame, text=missing_text(self.missing), font=FONT_SMALL, anchor="w",
                                  justify="left", wraplength=max(400, window.fit.width - 360))
        self.label.grid(row=0, column=0, rowspan=2, sticky="w", padx=10, pady=6)
        total = sum(m.size or 0 for m in self.missing if m.downloadable)
        self.button = ctk.CTkButton(self.frame, text=f"Download ({human_size(total)})" if total else "Download",
                                    font=FONT, fg_color=BLUE, width=220, command=self.start)
        if any(m.downloadable for m in self.missing):
            self.button.grid(row=0, column=1, padx=10, pady=(6, 2))
        self.progress = ctk.CTkProgressBar(self.frame, width=220, mode="determinate")
        self.progress.set(0)
        self.progress_label = ctk.CTkLabel(self.frame, text="", font=FONT_SMALL, anchor="e")

    @property
    def shown(self) -> bool:
        """True while the strip is in the window."""
        return self.frame is not None

    def start(self) -> None:
        """The Download button: fetch what is missing in the background."""
        if self.download is not None and self.download.running:
            return
        self.download = ModelDownload(self.missing, self.events)
        self.button.configure(state="disabled", text="Downloading…")
        self.progress.grid(row=1, column=1, padx=10, pady=(2, 2))
        self.progress_label.grid(row=2, column=1, sticky="e", padx=10, pady=(0, 6))
        self.label.configure(text_color="gray85")
        self.download.start()

    def poll(self) -> None:
        """Show the download's progress and end (called from the window's poll, on the Tk thread)."""
        for _ in range(EVENTS_PER_POLL):
            try:
                item = self.events.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, DownloadProgress):
                self.show_progress(item)
            elif isinstance(item, DownloadDone):
                self.finish(item)

    def show_progress(self, progress: DownloadProgress) -> None:
        """The bar and the bytes so far."""
        if progress.total:
            self.progress.set(min(1.0, progress.done / progress.total))
            of = f" of {human_size(progress.total)}"
        else:
            of = ""
        self.progress_label.configure(text=f"{progress.file}: {human_size(progress.done)}{of}")

    def finish(self, done: DownloadDone) -> None:
        """Reload the workers whose files arrived; say what failed, or take the strip away."""
        if done.speech or done.brain:
            self.window.controls.engines.reload(speech=done.speech, brain=done.brain)
        self.missing = missing_models(self.window.config)
        if done.error is None and not self.missing:
            self.window.show_message("models downloaded: the speech model is loading (status bar below)", "info")
            self.frame.grid_remove()
            self.frame.destroy()
            self.frame = None
            return
        why = done.error or "some files are still missing"
        self.label.configure(text=f"Download stopped: {why}\n\n{missing_text(self.missing)}", text_color=RED)
        self.button.configure(state="normal", text="Retry download")
        self.progress_label.configure(text="")
        log.warning("model download: %s", why)

    def close(self) -> None:
        """The window closes: a download still running is abandoned (it resumes next time)."""
        if self.download is not None and self.download.running:
            log.info("model download abandoned at close; Download resumes it")

