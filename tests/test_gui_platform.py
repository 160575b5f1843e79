"""The window on small screens (Xvfb at a 13-inch MacBook Air's sizes), Cmd-Q, and Tk 9 trackpad scrolling."""

from __future__ import annotations

import os
import subprocess
import sys
import tkinter as tk
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import customtkinter as ctk
import pytest

from support.fakes import RecordingControls, RecordingPipeline
from support.gui import pump, window_for
from voicevibe.config import Config
from voicevibe.config_files import load_config
from voicevibe.events import SetGain
from voicevibe.gui.platform import PREFERRED, TouchpadScroller, fit_window, touchpad_deltas
from voicevibe.gui.window import PerformanceWindow

# "Looks like" sizes of the 13-inch MacBook Airs (M1 default 1440x900, M2 default 1470x956, a smaller
# scaled choice 1280x800), and a big screen.
ROOT = Path(__file__).resolve().parent.parent
SCREENS = ["1440x900", "1470x956", "1280x800", "1920x1080"]


def pack(dx: int, dy: int) -> int:
    """What Tk 9 puts in %D: X in the high 16 bits, Y in the low 16, two's complement."""
    return ((dx & 0xFFFF) << 16) | (dy & 0xFFFF)


def test_fit_window_keeps_the_preferred_size_on_a_big_screen_and_shrinks_on_a_small_one() -> None:
    big = fit_window(1920, 1080)
    assert (big.width, big.height) == PREFERRED and big.left_width == 640
    air = fit_window(1440, 900)
    assert air.width <= 1440 - 2 * 20 and air.height <= 900 - 24 - 60  # room for the menu bar and a Dock
    assert air.x + air.width <= 1440 and air.y + air.height <= 900
    tiny = fit_window(1024, 640)
    assert tiny.width <= 1024 and tiny.height <= 640 and tiny.left_width == 480
    assert fit_window(800, 500).width == 800  # a screen under the minimum: the whole screen


def test_touchpad_deltas_unpack_tk9s_two_signed_16_bit_values() -> None:
    assert touchpad_deltas(pack(0, -40)) == (0, -40)
    assert touchpad_deltas(pack(-3, 7)) == (-3, 7)
    assert touchpad_deltas(pack(32767, -32768)) == (32767, -32768)
    assert touchpad_deltas(pack(5, 0) - (1 << 32)) == (5, 0)  # a negative %D as Python sees it


def pretend_screen(monkeypatch: pytest.MonkeyPatch, width: int, height: int) -> None:
    """The window asks Tk for the screen's size: answer as a smaller screen would.

    (The test display is one Xvfb for the whole session: Tk crashes when a process opens a second X
    server after the first one closed, so the screen size is what changes, not the server.)
    """
    monkeypatch.setattr(ctk.CTk, "winfo_screenwidth", lambda self: width)
    monkeypatch.setattr(ctk.CTk, "winfo_screenheight", lambda self: height)


@pytest.fixture(params=SCREENS)
def small_screen(request: pytest.FixtureRequest, display: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """A screen of this size, as the window sees it."""
    width, height = map(int, request.param.split("x"))
    pretend_screen(monkeypatch, width, height)
    return width, height


def inside(widget: tk.Misc, root: tk.Misc) -> bool:
    """True when the whole widget lies within the root window's area."""
    x = widget.winfo_rootx() - root.winfo_rootx()
    y = widget.winfo_rooty() - root.winfo_rooty()
    return (widget.winfo_ismapped() and x >= 0 and y >= 0 and x + widget.winfo_width() <= root.winfo_width()
            and y + widget.winfo_height() <= root.winfo_height())


def test_the_window_fits_the_screen_with_panic_and_the_status_bar_in_view(small_screen: tuple[int, int]) -> None:
    width, height = small_screen
    with window_for(Config(), pipeline_factory=RecordingPipeline, controls=RecordingControls()) as window:
        root = window.root
        pump(root, lambda: root.winfo_width() > 1)
        fit = fit_window(width, height)
        assert (root.winfo_width(), root.winfo_height()) == (fit.width, fit.height)
        assert root.winfo_rootx() + root.winfo_width() <= width and root.winfo_rooty() + root.winfo_height() <= height
        for widget in (window.ui.panic_button, window.ui.freeze_button, window.ui.message, window.ui.model_status,
                       window.ui.start_button.master.master):  # the start button's scrollable column
            assert inside(widget, root), f"{widget} is cut off on a {width}x{height} screen"
        if window.models.shown:  # the first-launch strip (models missing here) stays in view too
            assert inside(window.models.button, root)


def test_cmd_q_closes_the_window_cleanly(display: str, guard: list[str]) -> None:
    """Cmd-Q is the Quit Apple Event: Tk calls ::tk::mac::Quit when it exists (else Tcl_Exit(0), no cleanup)."""
    controls = RecordingControls(load_config())
    with window_for(load_config(), guard, pipeline_factory=RecordingPipeline, controls=controls) as window:
        window.ui.mode.set("Script")
        window.start()
        pipeline = window.pipeline
        window.sound.set_gain(-5.0)
        window.ask_quit = lambda: True  # type: ignore[method-assign]  # the show runs: the dialog's "Yes"
        window.root.tk.call("::tk::mac::Quit")  # what the Quit menu item, the Dock and logout run
        assert window.closed and pipeline.stopped and controls.engines.closed and controls.closed
        assert SetGain(-5.0) in controls.commands
    assert load_config().dsp.gain_db == -5.0  # the settings were saved on the way out


@pytest.fixture
def cramped(display: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PerformanceWindow]:
    """The window on a 1280x800 screen: the controls column is taller than what shows."""
    pretend_screen(monkeypatch, 1280, 800)
    with window_for(Config(), pipeline_factory=RecordingPipeline, controls=RecordingControls()) as window:
        pump(window.root, lambda: window.root.winfo_width() > 1)
        yield window


def test_a_trackpad_scroll_moves_the_controls_column_under_the_pointer(cramped: PerformanceWindow) -> None:
    root = cramped.root
    scroller = TouchpadScroller(root)
    assert scroller.bind() == (tk.TkVersion >= 9)  # Tk 8.6 has no <TouchpadScroll>: nothing to do there
    label = cramped.ui.gain.label
    canvas = scroller.canvas_for(label)
    assert canvas is not None
    top, bottom = canvas.yview()
    assert top == 0.0 and bottom < 1.0, "the controls column should be taller than a 1280x800 screen shows"
    at = SimpleNamespace(x_root=label.winfo_rootx() + 3, y_root=label.winfo_rooty() + 3)
    box = canvas.bbox("all")
    assert scroller.on_scroll(SimpleNamespace(delta=pack(0, -60), **vars(at))) == "break"
    moved = canvas.yview()[0]
    assert moved == pytest.approx(60 / (box[3] - box[1]), abs=0.01)
    scroller.on_scroll(SimpleNamespace(delta=pack(0, 30), **vars(at)))
    assert 0 < canvas.yview()[0] < moved  # back up a little
    scroller.on_scroll(SimpleNamespace(delta=pack(0, 10_000), **vars(at)))
    assert canvas.yview()[0] == 0.0  # never above the top
    transcript = cramped.ui.transcript
    over_text = SimpleNamespace(delta=pack(0, -60), x_root=transcript.winfo_rootx() + 5,
                                y_root=transcript.winfo_rooty() + 5)
    assert scroller.on_scroll(over_text) is None  # a text box scrolls itself


def test_customtkinter_gets_its_shape_font_without_a_fonts_folder(display: str, tmp_path: Path) -> None:
    """With no home folder to make ~/.fonts in, CustomTkinter warned "The rendering quality will be bad!" and
    drew coarse corners; the fonts now reach Tk through fontconfig, and nothing is written."""
    home = tmp_path / "no-such-home"
    probe = ("import tkinter, tkinter.font, voicevibe.gui.window\n"
             "from customtkinter.windows.widgets.core_rendering import DrawEngine\n"
             "root = tkinter.Tk()\n"
             "print(DrawEngine.preferred_drawing_method, 'CustomTkinter_shapes_font' in tkinter.font.families(root))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["font_shapes", "True"], done.stdout
    assert "rendering quality" not in done.stderr and "FontManager" not in done.stderr, done.stderr
    assert not (home / ".fonts").exists()  # nothing copied into the user's fonts
