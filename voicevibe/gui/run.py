"""Opening the window: is there a display, keep the Mac awake, run Tk until the window closes."""

from __future__ import annotations

import os
import sys
import tkinter as tk

import customtkinter as ctk

from voicevibe.config import Config
from voicevibe.gui.window import PerformanceWindow

EXIT_OK, EXIT_NO_DISPLAY = 0, 2
NO_DISPLAY = ("no display for the window ({why}); for a headless show use `voicevibe run --no-gui` "
              "(or set DISPLAY)")


def display_problem() -> str | None:
    """Why no window can open here (no X11/Wayland display on Linux), or None."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "DISPLAY is not set"
    return None


def run_gui(config: Config, input_spec: str | None = None, *, quit_after: float | None = None) -> int:
    """Open the window and run it until closed; exit code 2 when there is no display."""
    from voicevibe.launcher import keep_awake

    why = display_problem()
    if why is None:
        try:
            ctk.set_appearance_mode("dark")
            root = ctk.CTk()
        except tk.TclError as e:
            why = str(e)
    if why is not None:
        print(f"voicevibe: {NO_DISPLAY.format(why=why)}", file=sys.stderr)
        return EXIT_NO_DISPLAY
    window = PerformanceWindow(config, root, input_spec=input_spec)
    if quit_after is not None:
        root.after(int(quit_after * 1000), window.close)
    awake = keep_awake(os.getpid())
    try:
        root.mainloop()
    finally:
        window.close()
        if awake is not None:
            awake.terminate()
            awake.wait(5)
    return EXIT_OK

