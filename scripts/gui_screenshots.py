"""Screenshots of the window for the README: idle, and mid-rehearsal (assets/screenshot-*.png).

    .venv/bin/python scripts/gui_screenshots.py [idle] [rehearsal]

Uses $DISPLAY or starts Xvfb; ImageMagick's `import` grabs the window. Both load the example show
(examples/night-swim.toml: the cue grid). The rehearsal runs the real Pipeline on a tiny random-weight
checkpoint (its words are noise; the path is real) with espeak speech and the fallback brain, and fires
the first cue (the grid then highlights the second).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import customtkinter as ctk  # noqa: E402

from support.xvfb import xvfb  # noqa: E402
from voicevibe.config_files import load_config  # noqa: E402
from voicevibe.gui.window import PerformanceWindow  # noqa: E402

ASSETS = ROOT / "assets"
SHOW = {"show": {"file": str(ROOT / "examples" / "night-swim.toml")}}


def grab(root: ctk.CTk, name: str) -> None:
    """Save the window (its X frame) as assets/<name>."""
    for _ in range(20):
        root.update()
        time.sleep(0.02)
    subprocess.run(["import", "-window", root.wm_frame(), str(ASSETS / name)], check=True)
    print(f"wrote {ASSETS / name}")


def pump_until(root: ctk.CTk, done: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:  # type: ignore[operator]
        root.update()
        time.sleep(0.02)


def main(which: list[str]) -> None:
    with ExitStack() as stack:
        if not os.environ.get("DISPLAY"):
            os.environ["DISPLAY"] = stack.enter_context(xvfb())
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        ctk.set_appearance_mode("dark")
        if "idle" in which:
            root = ctk.CTk()
            window = PerformanceWindow(load_config(overrides=[SHOW], include_defaults_files=False), root,
                                       settings_file=tmp / "settings.toml")
            grab(root, "screenshot-idle.png")
            window.close()
        if "rehearsal" in which:
            rehearsal(tmp)


def rehearsal(tmp: Path) -> None:
    from support.speech import write_speech
    from voicevibe.testing.checkpoint import write_checkpoint

    checkpoint = write_checkpoint(tmp / "stt-tiny", "tiny", vad=True, seed=0)
    speech = write_speech(tmp / "speech.wav")
    render_pc = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a receiver, so the OSC panel shows sends
    render_pc.bind(("127.0.0.1", 0))
    config = load_config([], [{"stt": {"model": str(checkpoint), "dtype": "f32"}, "brain": {"model": "none"},
                               "osc": {"targets": f"127.0.0.1:{render_pc.getsockname()[1]}"},
                               "session": {"log_dir": str(tmp / "logs"), "record_audio": "off"}}, SHOW],
                         include_defaults_files=False)
    root = ctk.CTk()
    window = PerformanceWindow(config, root, input_spec=str(speech), settings_file=tmp / "settings.toml")
    window.start()
    pump_until(root, lambda: window.ui.prompts.entries or window.pipeline is None, 120)
    root.event_generate("<Key-1>")  # the first cue: the grid highlights the next one
    pump_until(root, lambda: False, 1.5)  # a few more words and meter updates
    grab(root, "screenshot-rehearsal.png")
    window.close()
    render_pc.close()


if __name__ == "__main__":
    main(sys.argv[1:] or ["idle", "rehearsal"])
