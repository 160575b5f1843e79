"""A cue's cost: from the operator's action to the prompt's OSC datagram at the receiver (goal: under 5 ms
median for a key press).

    flock /tmp/bench.lock nice .venv/bin/python bench/cues.py [--cues N] [--out FILE]

Four surfaces, each firing N cues (alternating two fixed-prompt cues, `generic` preset, so each cue is
/seed, /prompt, /style, /mood, /json and /prompt_list; transitions off so no ramp runs meanwhile) at a
local UDP receiver that stamps the datagram carrying /prompt:
1. a key press in the window (real Tk under Xvfb, a running Pipeline): `event_generate("<Key-1>")`, which
   Tk dispatches to the window's binding exactly as a key from the X server;
2. `Pipeline.apply(FireCue)` (a headless show's entry point, what the voice triggers call);
3. an OSC control message `/voicevibe/cue i` sent to the control-in port;
4. a MIDI Note On from a fake controller through a JACK server (dummy driver, 128-frame periods).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from pythonosc.osc_message_builder import OscMessageBuilder  # noqa: E402

from voicevibe.config import Config  # noqa: E402
from voicevibe.config_files import load_config  # noqa: E402
from voicevibe.events import FireCue  # noqa: E402
from voicevibe.runtime.pipeline import Pipeline  # noqa: E402

JACK = "mido.backends.rtmidi/UNIX_JACK"
SHOW = """
[[cue]]
name = "Harbour"
prompt = "ink drawing, a harbour at dusk, lanterns on black water"
seed = 7
[[cue]]
name = "Moon"
prompt = "a red moon over a silent sea, long exposure"
"""


class Receiver:
    """A UDP socket read on the measuring thread: the time the /prompt datagram of a cue arrives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(2.0)
        self.port = self.sock.getsockname()[1]

    def prompt_arrival(self) -> float:
        """Block until a /prompt datagram arrives; its perf_counter time."""
        while True:
            data = self.sock.recv(65536)
            if data.startswith(b"/prompt\0"):
                return time.perf_counter()

    def drain(self) -> None:
        self.sock.settimeout(0.05)
        try:
            while True:
                self.sock.recv(65536)
        except TimeoutError:
            pass
        self.sock.settimeout(2.0)


LOST: dict[int, int] = {}  # id(times) -> cues whose datagram never came (a MIDI event in a missed JACK cycle)


def measure(count: int, fire: Callable[[int], None], receiver: Receiver) -> list[float]:
    """Milliseconds from fire(cue) to the /prompt datagram, `count` times (cues 1 and 2 alternate)."""
    times: list[float] = []
    lost = 0
    for index in range(count):
        receiver.drain()
        start = time.perf_counter()
        fire(1 + index % 2)
        try:
            times.append((receiver.prompt_arrival() - start) * 1000)
        except TimeoutError:
            lost += 1
        time.sleep(0.005)
    LOST[id(times)] = lost
    return times


def config_for(tmp: Path, receiver: Receiver, **sections: dict) -> Config:
    show = tmp / "show.toml"
    show.write_text(SHOW, encoding="utf-8")
    return load_config(overrides=[{
        "stt": {"model": str(tmp / "no-model")}, "brain": {"model": "none"},
        "osc": {"targets": f"127.0.0.1:{receiver.port}", "preset": "generic"},
        "session": {"log_dir": str(tmp / "log"), "record_audio": "off"},
        "show": {"file": str(show), "transition_seconds": 0.0}}, sections], include_defaults_files=False)


def bench_window(count: int, tmp: Path) -> list[float]:
    import customtkinter as ctk

    from support.xvfb import xvfb
    from voicevibe.gui.window import PerformanceWindow

    receiver = Receiver()
    with xvfb() as display:
        os.environ["DISPLAY"] = display
        root = ctk.CTk()
        window = PerformanceWindow(config_for(tmp, receiver), root, settings_file=tmp / "settings.toml")
        window.ui.mode.set("Script")
        window.start()
        root.focus_force()
        for _ in range(20):
            root.update()
            time.sleep(0.02)

        def press(cue: int) -> None:
            root.event_generate(f"<Key-{cue}>")

        try:
            return measure(count, press, receiver)
        finally:
            window.close()


def bench_headless(count: int, tmp: Path) -> tuple[list[float], list[float]]:
    receiver = Receiver()
    pipeline = Pipeline(config_for(tmp, receiver, control={"enabled": True, "port": 0}), script=[])
    pipeline.start()
    control = pipeline.control_server.address
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    messages = {}
    for cue in (1, 2):
        builder = OscMessageBuilder("/voicevibe/cue")
        builder.add_arg(cue)
        messages[cue] = builder.build().dgram
    try:
        apply = measure(count, lambda cue: pipeline.apply(FireCue(cue, via="bench")), receiver)
        osc = measure(count, lambda cue: out.sendto(messages[cue], control), receiver)
    finally:
        out.close()
        pipeline.stop()
    return apply, osc


def bench_midi(count: int, tmp: Path) -> list[float]:
    import mido

    from voicevibe.midi.input import MidiInput

    os.environ.setdefault("JACK_NO_START_SERVER", "1")
    os.environ["JACK_DEFAULT_SERVER"] = name = f"voicevibe-bench-{os.getpid()}"  # no other client on it
    jackd = subprocess.Popen(["jackd", "-n", name, "-r", "-t", "10000", "-d", "dummy", "-r", "48000", "-p", "128"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    backend = mido.Backend(JACK, load=True)
    deadline = time.monotonic() + 20
    while True:
        try:
            backend.get_input_names()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    receiver = Receiver()
    config = config_for(tmp, receiver, midi={"backend": JACK, "port": "fakectl", "reconnect_seconds": 0.2,
                                             "mapping": "cue1=note:10:36, cue2=note:10:37"})
    pipeline = Pipeline(config, script=[])
    pipeline.start()
    controller = backend.open_output("FakeCtrl", client_name="fakectl")
    midi = MidiInput(config.midi, pipeline.apply).start()
    try:
        while midi.connected is None:
            time.sleep(0.05)
        return measure(count, lambda cue: controller.send(mido.Message("note_on", channel=9, note=35 + cue,
                                                                       velocity=100)), receiver)
    finally:
        midi.close()
        controller.close()
        pipeline.stop()
        jackd.send_signal(signal.SIGTERM)
        jackd.wait(10)


def row(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return (f"| {name} | {len(times)} | {LOST.get(id(times), 0)} | {statistics.median(times):.2f} | {p95:.2f} | "
            f"{ordered[0]:.2f} | {ordered[-1]:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cues", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS-cues.md")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for name in ("window", "headless", "midi"):
            (base / name).mkdir()
        window = bench_window(args.cues, base / "window")
        apply, osc = bench_headless(args.cues, base / "headless")
        midi = bench_midi(args.cues, base / "midi") if shutil.which("jackd") else []
    load_after = os.getloadavg()[0]
    lines = [
        "# A cue: action -> OSC datagram", "",
        f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores, load average (1 min) "
        f"{load_before:.2f} before the run, {load_after:.2f} after (a shared machine; the run was niced). "
        f"`python bench/cues.py --cues {args.cues}`.", "",
        "From the operator's action to the datagram carrying the cue's `/prompt` at a local UDP receiver "
        "(`generic` preset: `/seed` then `/prompt`, `/style`, `/mood`, `/json`, `/prompt_list`; transitions "
        "off). Goal: under 5 ms median for a key press.", "",
        "| surface | cues arrived | lost | median ms | p95 ms | min ms | max ms |", "|---|---|---|---|---|---|---|",
        row("key press in the window (Tk under Xvfb, show running)", window),
        row("`Pipeline.apply(FireCue)` (headless; what a spoken trigger calls)", apply),
        row("OSC control in `/voicevibe/cue i`", osc),
    ]
    if midi:
        lines.append(row("MIDI Note On via JACK (dummy driver, 128-frame period = 2.7 ms)", midi))
    lines += ["", "The key press is Tk's own dispatch of the key event (`event_generate`, as for a key from the "
              "X server) to the binding, `PerformanceWindow.command`, the show control, the OSC builders and "
              "the UDP send, then the receiver's wake-up. A real keyboard adds the OS's input latency before "
              "that; a MIDI pad adds the MIDI system's: here up to one JACK period (2.7 ms) plus our poll of rtmidi's "
              "queue (every 1 ms); the MIDI tail (p95, max) is JACK's dummy driver running without realtime "
              "priority, niced, on a shared 2-core machine. Each cue sends six datagrams (`generic`); the "
              "`/prompt` one is the second. A lost MIDI cue is a Note On in a JACK cycle the loaded machine missed "
              "(the dummy driver without realtime priority); a realtime JACK or CoreMIDI with a real interface "
              "could not be measured here.", ""]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
