"""Real MIDI ports for the tests, by platform: a JACK server with the dummy driver on Linux (no sound
hardware here, so no ALSA sequencer: /dev/snd does not exist), CoreMIDI on macOS, which needs no server.

Either way the fake controller is a real virtual port of python-rtmidi's (`open_virtual_port`, which
mido opens for a port given a client name), and the app finds it by name like any controller. Every
port is closed before jackd stops: closing an rtmidi JACK port after its server died crashes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import mido
import pytest

RTMIDI = "mido.backends.rtmidi"
SYSTEMS = {"linux": "UNIX_JACK", "darwin": "MACOSX_CORE"}  # the MIDI system the tests use, by sys.platform
PORT = "FakeCtrl"  # the fake controller's output port
CLIENT = "fakectl"  # its client name (JACK lists the port as "fakectl:FakeCtrl")
START_SECONDS = 20.0

os.environ.setdefault("JACK_NO_START_SERVER", "1")  # libjack (rtmidi's, PortAudio's) must never start a server


def midi_system(platform: str, apis: list[str]) -> str | None:
    """The rtmidi API the tests use on this platform, if python-rtmidi was built with it; None: no MIDI system
    with virtual ports here (Windows' MultiMedia API has none)."""
    system = SYSTEMS.get("linux" if platform.startswith("linux") else platform)
    return system if system in apis else None


@dataclass
class MidiPorts:
    """The tests' MIDI system: its mido backend, the `midi.backend` setting that names it, and the fake controller."""

    backend: Any  # a loaded mido.Backend
    setting: str  # "mido.backends.rtmidi/UNIX_JACK" or ".../MACOSX_CORE"
    controller: str = ""  # how the app lists the fake controller (known once one was opened)

    def open_controller(self) -> Any:
        """A fake controller: a client with one virtual output port, listed by the app once it appears."""
        out = self.backend.open_output(PORT, client_name=CLIENT)
        deadline = time.monotonic() + START_SECONDS
        while not (names := [n for n in self.backend.get_input_names() if PORT in n]):
            if time.monotonic() > deadline:
                out.close()
                raise RuntimeError(f"the fake controller {PORT} never appeared among {self.backend.get_input_names()}")
            time.sleep(0.05)
        self.controller = names[0]
        return out


@pytest.fixture(scope="module")
def midi_ports() -> Iterator[MidiPorts]:
    """Real MIDI ports for a test module: JACK on Linux, CoreMIDI on macOS. On Linux a python-rtmidi without JACK
    is an error (the tests must run there); elsewhere, without either, they are skipped with the reason."""
    apis = mido.Backend(RTMIDI, load=True).module.get_api_names()
    system = midi_system(sys.platform, apis)
    if system is None and sys.platform.startswith("linux"):
        raise RuntimeError(f"python-rtmidi has no JACK API here ({apis}); the pinned wheel has it: "
                           "`.venv/bin/pip install --force-reinstall python-rtmidi==1.5.8`")
    if system is None:
        pytest.skip(f"no MIDI system with virtual ports on {sys.platform} (python-rtmidi has {apis})")
    if system == "UNIX_JACK":
        yield from _jack()
    else:
        yield MidiPorts(mido.Backend(f"{RTMIDI}/{system}", load=True), f"{RTMIDI}/{system}")


def _jack() -> Iterator[MidiPorts]:
    """jackd with the dummy driver (no realtime), for one test module.

    PortAudio (the window rescans the audio devices) also becomes a JACK client while jackd runs; it
    is shut down before jackd stops and started again after (Pa_Terminate on a dead JACK server
    aborts the process), so later tests see the same audio devices as before."""
    if shutil.which("jackd") is None:
        raise RuntimeError("jackd not found: apt-get install jackd2 (scripts/setup.sh --test does)")
    # A server of our own name: any other JACK client on the machine (another test run's PortAudio...) connects
    # to "default", and one that stops reading its notifications would stall every client of the server.
    name = f"voicevibe-test-{os.getpid()}"
    old_name = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = name  # libjack reads it at each client open: rtmidi's and PortAudio's
    # -r: no realtime; -t: a client may stall 10 s (a loaded CI box) before JACK drops it; -p 1024: 21 ms periods,
    # so a loaded machine misses fewer cycles (a missed cycle loses its MIDI events, as on a real rig)
    proc = subprocess.Popen(["jackd", "-n", name, "-r", "-t", "10000", "-d", "dummy", "-r", "48000", "-p", "1024"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    setting = f"{RTMIDI}/UNIX_JACK"
    backend = mido.Backend(setting, load=True)
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            backend.get_input_names()  # a JACK client can be made: the server is up
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"jackd did not start (exit {proc.poll()})") from None
            time.sleep(0.05)
    yield MidiPorts(backend, setting)
    audio = sys.modules.get("sounddevice")
    if audio is not None:
        audio._terminate()
    proc.send_signal(signal.SIGTERM)  # every port of the tests is closed by now
    proc.wait(timeout=10)
    if old_name is None:
        os.environ.pop("JACK_DEFAULT_SERVER", None)
    else:
        os.environ["JACK_DEFAULT_SERVER"] = old_name
    if audio is not None:
        audio._initialize()
