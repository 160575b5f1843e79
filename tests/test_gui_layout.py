"""The window's room for what is read, at the MacBook screen sizes and a big screen, under Xvfb.

At each size, with and without the first-launch strip, with a nine-cue show loaded: the transcript
shows three lines of its large type, the prompt history the three newest prompts, and panic, freeze,
the stage-view button and the status bar lie inside the screen; the status bar's text fits or wraps.

One Xvfb serves the session (Tk crashes when a process opens a second X server after the first one
closed): its screen (tests/support/xvfb.py, 1920x1200) holds every size below, and the window is told
the size it would be given (`winfo_screenwidth/height`); "inside the screen" is checked against that
size at the screen's origin, where the window is placed.
"""

from __future__ import annotations

import tkinter as tk
import tkinter.font as tkfont
from pathlib import Path

import customtkinter as ctk
import pytest

from support.fakes import RecordingControls, RecordingPipeline
from support.gui import pump, window_for
from voicevibe.config_files import load_config
from voicevibe.events import ImagePrompt, WorkerState
from voicevibe.gui import firstrun

TRANSCRIPT_LINES, PROMPTS_SHOWN = 3, 3  # what must show: three lines of the large type, the three newest prompts
SIZES = ["1440x900", "1470x956", "1512x982", "1728x1117", "1920x1080"]  # MacBook Air/Pro 13-16", a 1080p screen
PROMPTS = ["cinematic film still, a lighthouse on a cliff at night, storm clouds",
           "watercolor, two dancers in a red room, soft window light",
           "35mm photo, a fishing boat leaving the harbour at dawn"]


def nine_cue_show(folder: Path) -> Path:
    """A show file with nine cues (two rows of the cue grid)."""
    cues = "".join(f'\n[[cue]]\nname = "Scene {n}"\nprompt = "a scene number {n}"\n' for n in range(1, 10))
    path = folder / "nine.toml"
    path.write_text(f'[show]\nname = "Nine"\n{cues}', encoding="utf-8")
    return path


def within(widget: tk.Misc, width: int, height: int) -> bool:
    """The widget is mapped and lies wholly within a width x height screen at the origin."""
    x, y = widget.winfo_rootx(), widget.winfo_rooty()
    return (bool(widget.winfo_ismapped()) and x >= 0 and y >= 0 and x + widget.winfo_width() <= width
            and y + widget.winfo_height() <= height)


def linespace(font: object) -> int:
    return int(tkfont.Font(font=font).metrics("linespace"))


@pytest.mark.parametrize("size", SIZES)
def test_the_transcript_and_prompts_keep_their_room_and_panic_and_status_stay_on_screen(
        size: str, display: str, guard: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    width, height = map(int, size.split("x"))
    monkeypatch.setattr(ctk.CTk, "winfo_screenwidth", lambda self: width)
    monkeypatch.setattr(ctk.CTk, "winfo_screenheight", lambda self: height)
    config = load_config(overrides=[{"show": {"file": str(nine_cue_show(tmp_path))}}], include_defaults_files=False)
    for strip in (True, False):
        if not strip:  # every model on disk: no first-launch strip
            monkeypatch.setattr(firstrun, "missing_models", lambda config: [])
        with window_for(config, guard, pipeline_factory=RecordingPipeline, controls=RecordingControls(config),
                        settings_file=tmp_path / "settings.toml") as w:
            ui, where = w.ui, f"{size}, strip {'shown' if strip else 'absent'}"
            pump(w.root, lambda: w.root.winfo_width() > 1)
            assert w.models.shown is strip and len(w.cues.buttons) == 9, where
            text = ui.transcript._textbox  # the first frame, before anything was said
            assert text.winfo_height() >= TRANSCRIPT_LINES * linespace(text.cget("font")), where
            for prompt in PROMPTS:  # then the prompts arrive first, before any word
                w.handle(ImagePrompt(prompt, "", "cinematic", "", "fallback", reason="brain model loading"))
            for line in ("the sea is calm tonight", "a boat leaves", "and the lighthouse turns"):
                ui.transcript.insert("end", line + "\n")
            pump(w.root)
            assert text.winfo_height() >= TRANSCRIPT_LINES * linespace(text.cget("font")), where
            for line in range(1, TRANSCRIPT_LINES + 1):
                box = text.dlineinfo(f"{line}.0")
                assert box is not None and box[1] + box[3] <= text.winfo_height(), f"{where}: line {line} hidden"
            canvas = ui.prompts._parent_canvas
            top, bottom = canvas.winfo_rooty(), canvas.winfo_rooty() + canvas.winfo_height()
            newest = [button for _, button in ui.prompts.entries[-PROMPTS_SHOWN:]]
            for button in newest:
                assert top <= button.winfo_rooty() and button.winfo_rooty() + button.winfo_height() <= bottom, \
                    f"{where}: a prompt of the newest {PROMPTS_SHOWN} is cut off"
            assert w.root.winfo_rootx() + w.root.winfo_width() <= width, where
            assert w.root.winfo_rooty() + w.root.winfo_height() <= height, where
            for widget in (ui.panic_button, ui.freeze_button, ui.stage_button, ui.transcript, ui.manual,
                           ui.model_status, ui.brain_status, ui.stats, ui.message, ui.log_path):
                assert within(widget, width, height), f"{where}: {widget} is not wholly on the screen"
            w.show_message("cannot start: " + "a long reason that names the file and the fix " * 6, "error")
            w.handle(WorkerState("stt", "failed", "speech engine cannot start: " + "where to get the model " * 30))
            pump(w.root)
            bar = ui.message.master
            for label in (ui.model_status, ui.brain_status, ui.stats, ui.log_path, ui.message):
                assert label.winfo_rootx() + label.winfo_width() <= bar.winfo_rootx() + bar.winfo_width(), where
                assert label._label.winfo_reqwidth() <= label.winfo_width(), f"{where}: {label.cget('text')} cut"
            assert within(ui.message, width, height), where
            assert text.winfo_height() >= TRANSCRIPT_LINES * linespace(text.cget("font")), f"{where}, long failure"
            assert canvas.winfo_height() >= sum(b.winfo_height() for b in newest), f"{where}, long failure"
