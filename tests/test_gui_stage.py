"""What the performer and the operator read, under Xvfb: Say with the show stopped, the brain row's one truth
with the status bar, the stage view, one line per event, and a stray key that does not end the show."""

from __future__ import annotations

import subprocess
import tkinter.font as tkfont
from collections.abc import Iterator

import pytest

from support.fakes import RecordingControls, RecordingPipeline, started
from support.gui import pump, window_for
from voicevibe.config import Config
from voicevibe.config_files import load_config
from voicevibe.events import Panic, SayText, WorkerState
from voicevibe.gui.brain import NO_SWITCH
from voicevibe.gui.widgets import FONT_TRANSCRIPT
from voicevibe.gui.window import PerformanceWindow


@pytest.fixture
def window(display: str, guard: list[str]) -> Iterator[PerformanceWindow]:
    with window_for(Config(), guard, pipeline_factory=RecordingPipeline, controls=RecordingControls()) as w:
        yield w


def xdotool(*args: str) -> None:
    """Real pointer input on the test display (apt package xdotool)."""
    subprocess.run(["xdotool", *args], check=True, timeout=20)


def say(w: PerformanceWindow, text: str) -> None:
    """Type a phrase in the Say box and press Return, as the operator does."""
    w.ui.say.insert(0, text)
    w.ui.say._entry.focus_force()
    pump(w.root)
    w.ui.say._entry.event_generate("<Return>")


def test_say_with_the_show_stopped_makes_a_prompt_and_says_why_the_fallback_answers(window) -> None:
    assert window.pipeline is None
    say(window, "a lighthouse in the fog")
    message = window.ui.message.cget("text")  # the brain worker is not up: said on the spot, with the reason
    assert "no brain model answers yet (brain model loading)" in message and "fallback" in message
    pump(window.root, lambda: any(p.phrase == "a lighthouse in the fog" for p, _ in window.ui.prompts.entries))
    assert SayText("a lighthouse in the fog") in window.controls.commands
    assert "a lighthouse in the fog (typed)" in window.ui.transcript.get("1.0", "end")  # the words show too


def test_the_brain_row_and_the_status_bar_name_the_model_that_answers(window) -> None:
    # Config(): the default 1B GGUF, not on this machine: the worker falls back to the bundled 270M.
    assert "Gemma 3 270M (bundled)" in window.ui.brain_source.cget("text")
    assert "gemma-3-1b" not in window.ui.brain_source.cget("text")
    window.handle(WorkerState("brain", "ready", "brain model: gemma-3-270m (bundled)", 1.0))
    assert window.ui.brain_source.cget("text") == "In use: local: gemma-3-270m (bundled)"
    assert window.ui.brain_status.cget("text") == "brain: local: gemma-3-270m (bundled)"
    window.handle(WorkerState("brain", "restarting", "brain stopped (signal 9 (SIGKILL)): restarting in 0.5 s"))
    row, bar = window.ui.brain_source.cget("text"), window.ui.brain_status.cget("text")
    assert row.removeprefix("In use: ") == bar.removeprefix("brain: ") and "fallback prompts" in row
    assert window.ui.brain_switch.cget("text") == NO_SWITCH and "brain." not in NO_SWITCH  # no config key


def test_a_server_brain_is_named_with_its_url(display: str, guard: list[str]) -> None:
    url = "http://192.168.1.30:11434/v1"
    config = load_config(overrides=[{"brain": {"model": url, "server_model": "mistral-nemo"}}],
                         include_defaults_files=False)
    with window_for(config, guard, pipeline_factory=RecordingPipeline, controls=RecordingControls(config)) as w:
        w.handle(WorkerState("brain", "ready", f"brain model: mistral-nemo @ {url}", 1.0))
        assert w.ui.brain_source.cget("text") == f"In use: server: mistral-nemo @ {url}"
        assert w.ui.brain_status.cget("text") == f"brain: server: mistral-nemo @ {url}"


def test_a_worker_failure_is_said_once(window) -> None:
    failure = "speech engine cannot start: no speech model kyutai/stt-1b-en_fr-candle on this computer"
    window.handle(WorkerState("stt", "failed", failure))
    shown = [label.cget("text") for label in (window.ui.model_status, window.ui.message, window.ui.brain_status,
                                              window.ui.stats)]
    assert sum(failure in text for text in shown) == 1, shown


def test_the_stage_view_opens_shows_the_words_and_the_prompt_and_closes(window) -> None:
    root = window.root
    root.focus_force()
    pump(root)
    root.event_generate("<Key-v>")
    stage = window.stage
    assert stage is not None and stage.top.winfo_exists() and window.ui.stage_button.cget("text").startswith("Close")
    pump(root, lambda: stage.top.winfo_ismapped())
    assert stage.top.overrideredirect()  # borderless
    say(window, "the moon rises over the harbour")
    pump(root, lambda: stage.prompt.cget("text") != "")
    [(prompt, _)] = window.ui.prompts.entries
    assert stage.prompt.cget("text") == prompt.text
    assert stage.words.cget("text") == "the moon rises over the harbour"
    assert stage.words.cget("fg") == "#ffffff" and stage.top.cget("background") == "#000000"
    assert tkfont.Font(font=stage.words.cget("font")).actual("size") >= 2 * FONT_TRANSCRIPT[1]  # very large type
    x, y = stage.top.winfo_rootx(), stage.top.winfo_rooty()
    xdotool("mousemove", str(x + 10), str(y + 10), "mousedown", "1")  # the operator drags it by any point
    pump(root)
    xdotool("mousemove", str(x + 110), str(y + 60))
    pump(root)
    xdotool("mousemove", str(x + 210), str(y + 110), "mouseup", "1")
    pump(root, lambda: (stage.top.winfo_rootx(), stage.top.winfo_rooty()) == (x + 200, y + 100))
    xdotool("click", "--repeat", "2", "--delay", "80", "1")  # a double click: full screen, and back
    pump(root, lambda: stage.top.winfo_width() == stage.top.winfo_screenwidth())
    assert stage.full and stage.top.winfo_height() == stage.top.winfo_screenheight()
    stage.toggle_full()
    pump(root, lambda: stage.top.winfo_width() < stage.top.winfo_screenwidth())
    assert not stage.full
    stage.top.event_generate("<Escape>")  # panic from the stage view's keyboard too
    assert Panic(True) in window.controls.commands
    window.ui.stage_button.invoke()
    assert window.stage is None and not stage.top.winfo_exists()
    assert window.ui.stage_button.cget("text") == "Stage view (V)"


def test_a_running_show_needs_space_twice_and_quit_asks(window, monkeypatch: pytest.MonkeyPatch) -> None:
    root = window.root
    pipeline = started(window)
    root.focus_force()
    pump(root)
    root.event_generate("<space>")  # a stray key: the show goes on, and the operator is told how to stop
    assert window.pipeline is pipeline and "press Space again" in window.ui.message.cget("text")
    root.event_generate("<Escape>")  # panic stays one key
    assert Panic(True) in window.controls.commands
    root.event_generate("<space>")
    assert window.pipeline is None
    pump(root, lambda: pipeline.stopped and window._ending is None)
    started(window)
    asked: list[bool] = []
    monkeypatch.setattr(window, "ask_quit", lambda: asked.append(False) or False)
    root.tk.call("::tk::mac::Quit")  # Cmd-Q while the show runs: asked, answered no
    assert asked == [False] and not window.closed and window.pipeline is not None
    monkeypatch.setattr(window, "ask_quit", lambda: asked.append(True) or True)
    root.tk.call(root.protocol("WM_DELETE_WINDOW"))  # the close button asks the same
    assert asked == [False, True] and window.closed


def test_without_confirm_stop_one_space_stops(display: str, guard: list[str]) -> None:
    config = load_config(overrides=[{"show": {"confirm_stop": False}}], include_defaults_files=False)
    with window_for(config, guard, pipeline_factory=RecordingPipeline, controls=RecordingControls(config)) as w:
        started(w)
        w.root.focus_force()
        pump(w.root)
        w.root.event_generate("<space>")
        assert w.pipeline is None

