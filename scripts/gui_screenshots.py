"""Screenshots of the window for the README: idle, mid-rehearsal, the stage view, at two screen sizes
(assets/screenshot-<kind>-<W>x<H>.png).

    .venv/bin/python scripts/gui_screenshots.py [--screen 1470x956] [idle] [rehearsal] [stage]

Starts Xvfb with a screen of that size (a 13-inch MacBook Air's 1470x956 by default; also 1920x1080);
ImageMagick's `import` grabs the window (the stage view: the whole screen, both windows). All load the
example show (examples/night-swim.toml: the cue grid). The rehearsal runs the real Pipeline on a tiny
random-weight checkpoint (its words are noise; the path is real) with espeak speech and the fallback
brain, and fires the first cue (the grid then highlights the second); the stage view shot types a
phrase with Say, the show stopped, and shows its words and prompt. PNGs are reduced to 64 colours.
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


def grab(root: ctk.CTk, name: str, *, screen: bool = False) -> None:
    """Save the window (its X frame), or the whole screen, as assets/<name> (64 colours: small files)."""
    for _ in range(20):
        root.update()
        time.sleep(0.02)
    path = ASSETS / name
    subprocess.run(["import", "-window", "root" if screen else root.wm_frame(), str(path)], check=True)
    subprocess.run(["convert", str(path), "-colors", "64", "-strip", f"PNG8:{path}"], check=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def pump_until(root: ctk.CTk, done: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:  # type: ignore[operator]
        root.update()
        time.sleep(0.02)


def main(which: list[str], screen: str) -> None:
    with ExitStack() as stack:
        os.environ["DISPLAY"] = stack.enter_context(xvfb(f"{screen}x24"))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        ctk.set_appearance_mode("dark")
        if "idle" in which:
            root = ctk.CTk()
            window = PerformanceWindow(load_config(overrides=[SHOW], include_defaults_files=False), root,
                                       settings_file=tmp / "settings.toml")
            grab(root, f"screenshot-idle-{screen}.png")
            window.close()
        if "rehearsal" in which:
            rehearsal(tmp, screen)
        if "stage" in which:
            stage(tmp, screen)


def stage(tmp: Path, screen: str) -> None:
    """The stage view over the window, after a typed phrase (show stopped) got its prompt."""
    config = load_config(overrides=[SHOW, {"brain": {"model": "none"}, "osc": {"targets": ""}}],
                         include_defaults_files=False)
    root = ctk.CTk()
    window = PerformanceWindow(config, root, settings_file=tmp / "settings.toml")
    window.toggle_stage()
    window.inputs.say("la lune se lève sur le port, un bateau rentre doucement")
    pump_until(root, lambda: window.ui.prompts.entries, 30)
    assert window.stage is not None
    width = root.winfo_screenwidth()
    window.stage.top.geometry(f"+{width - 1100 - 20}+{root.winfo_screenheight() - 560 - 20}")
    grab(root, f"screenshot-stage-{screen}.png", screen=True)
    window.close()


def rehearsal(tmp: Path, screen: str) -> None:
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
    grab(root, f"screenshot-rehearsal-{screen}.png")
    window.close()
    render_pc.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    size = args[args.index("--screen") + 1] if "--screen" in args else "1470x956"
    main([a for a in args if a in ("idle", "rehearsal", "stage")] or ["idle", "rehearsal", "stage"], size)
