"""A private PulseAudio daemon whose null sink is a real-time virtual microphone, for tests.

There is no sound hardware on the build machines (and no snd-aloop). A PulseAudio null sink
`vmic` renders whatever is played into it at real-time pace; its monitor `vmic.monitor` is
the default source, which PortAudio reaches through ALSA's `pulse` device
(libasound2-plugins). Everything lives in a temporary directory and is started and stopped
here, so a clean machine (CI, as root) needs only the apt packages:
pulseaudio pulseaudio-utils libasound2-plugins libportaudio2 (espeak-ng for the speech).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.platforms import PULSE, skip_on_mac

SINK = "vmic"
SINK_RATE = 48_000  # the null sink's clock; the monitor is resampled to what the client asks
ALSA_DEVICE = "pulse"  # the PortAudio (ALSA) device name libasound2-plugins provides
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
NEEDED = {"pulseaudio": "pulseaudio", "pactl": "pulseaudio-utils", "paplay": "pulseaudio-utils"}

DAEMON_SCRIPT = f"""\
load-module module-native-protocol-unix auth-anonymous=1
load-module module-null-sink sink_name={SINK} rate={SINK_RATE} channels=2
set-default-sink {SINK}
set-default-source {SINK}.monitor
"""
CLIENT_CONF = "autospawn = no\n"


class PulseError(RuntimeError):
    """The virtual microphone could not be set up; the message says why and what to install."""


@dataclass(frozen=True)
class VirtualMic:
    """A running private PulseAudio server with the `vmic` null sink."""

    root: Path
    env: dict[str, str]  # client environment (already applied to os.environ while running)
    log_path: Path

    def play(self, path: Path) -> subprocess.Popen[bytes]:
        """Start `paplay` of an audio file into the null sink (the mic hears it)."""
        return subprocess.Popen(["paplay", f"--device={SINK}", str(path)], env={**os.environ, **self.env},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def pactl(self, *args: str) -> str:
        """Run pactl against this server and return its output."""
        done = subprocess.run(["pactl", *args], env={**os.environ, **self.env}, capture_output=True,
                              text=True, timeout=STOP_TIMEOUT_S)
        if done.returncode:
            raise PulseError(f"pactl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def log_tail(self, lines: int = 20) -> str:
        """The daemon's last log lines, for failure messages."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _missing_tools() -> list[str]:
    return [f"{tool} (apt package {package})" for tool, package in NEEDED.items() if not shutil.which(tool)]


def _wait_until_ready(daemon: subprocess.Popen[bytes], env: dict[str, str], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise PulseError(f"pulseaudio exited with code {daemon.returncode} at start; its log:\n"
                             + log_path.read_text(errors="replace"))
        probe = subprocess.run(["pactl", "info"], env=env, capture_output=True, text=True, timeout=STOP_TIMEOUT_S)
        if probe.returncode == 0 and f"Default Source: {SINK}.monitor" in probe.stdout:
            return
        time.sleep(0.1)
    raise PulseError(f"pulseaudio did not answer within {START_TIMEOUT_S:g} s; its log:\n"
                     + log_path.read_text(errors="replace"))


def _stop(daemon: subprocess.Popen[bytes]) -> None:
    if daemon.poll() is not None:
        return
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait(timeout=STOP_TIMEOUT_S)


@contextmanager
def start_virtual_mic(root: Path) -> Iterator[VirtualMic]:
    """Start a private PulseAudio with the `vmic` null sink under `root`; stop it on exit.

    While it runs, os.environ points libpulse (in this process: PortAudio -> ALSA `pulse`
    plugin -> libpulse) at the private server, and PortAudio's device list is refreshed.
    """
    missing = _missing_tools()
    if missing:
        raise PulseError("cannot start the virtual microphone, missing: " + ", ".join(missing)
                         + " — apt install pulseaudio pulseaudio-utils libasound2-plugins")
    runtime = root / "runtime"
    home = root / "home"
    for d in (runtime, home, root / "state"):
        d.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)  # libpulse refuses a runtime dir others can write to
    script = root / "vmic.pa"
    script.write_text(DAEMON_SCRIPT)
    client_conf = root / "client.conf"
    client_conf.write_text(CLIENT_CONF)
    log_path = root / "pulseaudio.log"
    client_env = {
        "PULSE_SERVER": f"unix:{runtime / 'native'}",
        "PULSE_RUNTIME_PATH": str(runtime),
        "PULSE_CLIENTCONFIG": str(client_conf),  # never autospawn the user's daemon
        "PULSE_COOKIE": str(root / "cookie"),
    }
    daemon_env = {**os.environ, **client_env, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime),
                  "PULSE_STATE_PATH": str(root / "state"), "XDG_CONFIG_HOME": str(home / ".config")}
    command = ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "--system=false", "-n",
               "-F", str(script), "--use-pid-file=no", "--realtime=no", "--high-priority=no",
               "--disallow-exit", "--log-target=stderr", "--log-level=notice"]
    with open(log_path, "wb") as log_file:
        daemon = subprocess.Popen(command, env=daemon_env, stdout=log_file, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    saved = {key: os.environ.get(key) for key in client_env}
    try:
        _wait_until_ready(daemon, {**os.environ, **client_env}, log_path)
        os.environ.update(client_env)
        _rescan_portaudio()
        yield VirtualMic(root=root, env=client_env, log_path=log_path)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _stop(daemon)
        _rescan_portaudio()


def _rescan_portaudio() -> None:
    """sounddevice caches PortAudio's device list from import time: enumerate again."""
    from voicevibe.audio import rescan_devices

    rescan_devices()


@pytest.fixture(scope="module")
def virtual_mic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualMic]:
    """A private PulseAudio null sink as the microphone: nothing played = exact zeros.

    Fails, never skips, when it cannot start (but on macOS, where PulseAudio is not the sound system).
    """
    skip_on_mac(PULSE)
    try:
        with start_virtual_mic(tmp_path_factory.mktemp("pulse")) as mic:
            yield mic
    except PulseError as e:
        pytest.fail(f"PulseAudio virtual microphone unavailable: {e}", pytrace=False)
