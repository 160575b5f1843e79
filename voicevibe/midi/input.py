"""MIDI in: a controller's port opened by name with mido + python-rtmidi, reconnected by itself.

The backend is configurable (`midi.backend`): mido's default rtmidi API is ALSA on Linux, CoreMIDI
on macOS; a machine without ALSA devices (a container, CI) uses JACK:
`"mido.backends.rtmidi/UNIX_JACK"`. Neither mido nor rtmidi says when a port goes away, so a
watcher thread polls the port names every `midi.reconnect_seconds` (like the microphone retry):
a name that vanished closes the port, a name that comes back is opened again. If the backend
itself goes (JACK stopped), the stale port is kept, never closed: closing an rtmidi JACK port
after its server died crashes the process.

With the rtmidi backend, messages wait in rtmidi's own (C++) queue and a thread of ours reads them
every POLL_SECONDS: mido's ports would run a Python callback on the MIDI system's thread, which is
JACK's process thread on Linux, and a callback waiting for Python's global lock there makes JACK
miss cycles (their MIDI events are lost) or drop the client. Each message goes through the
`MidiRouter` (midi/router.py); a malformed or unmapped message is counted and ignored.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from voicevibe.config import ConfigError, MidiConfig
from voicevibe.events import Command, Status
from voicevibe.midi.mapping import parse_mapping
from voicevibe.midi.router import Learned, MidiRouter

log = logging.getLogger(__name__)

JOIN_SECONDS = 5.0
POLL_SECONDS = 0.001  # rtmidi's queue is read this often (what Scope's MIDI clock does): <= 1 ms added
DOWN_POLLS = 3  # listing fails this many times in a row: the MIDI system is gone (once may be a loaded machine)
QUEUE_MESSAGES = 4096  # rtmidi's queue: a fast knob sweep is a few hundred messages
JACK_HINT = ("no MIDI system here? on Linux without ALSA devices, run a JACK server and set "
             "midi.backend = \"mido.backends.rtmidi/UNIX_JACK\"")


class MidiError(ConfigError):
    """The MIDI backend cannot be used; the message says why and what to set."""


def open_backend(name: str) -> Any:
    """The mido backend `name` (module, optional /API), loaded and able to list ports; MidiError if not."""
    os.environ.setdefault("JACK_NO_START_SERVER", "1")  # never start an audio server behind the operator's back
    import mido

    try:
        backend = mido.Backend(name, load=True)
        backend.get_input_names()
    except ImportError as e:
        raise MidiError(f"midi.backend = {name!r}: no such mido backend ({e}); the default is "
                        "\"mido.backends.rtmidi\"") from None
    except ValueError as e:  # an unknown API name
        raise MidiError(f"midi.backend = {name!r}: {e}; APIs: UNIX_JACK, LINUX_ALSA, MACOSX_CORE, WINDOWS_MM") from None
    except OSError as e:  # rtmidi's SystemError: no ALSA sequencer, JACK not running...
        raise MidiError(f"MIDI backend {name!r} unavailable: {e} — {JACK_HINT}") from None
    return backend


def list_ports(config: MidiConfig) -> list[str]:
    """The MIDI input ports the backend sees now."""
    return list(open_backend(config.backend).get_input_names())


def match_port(names: list[str], wanted: str) -> str | None:
    """The port called `wanted`, else the first whose name contains it (case ignored)."""
    if wanted in names:
        return wanted
    folded = wanted.casefold()
    return next((n for n in names if folded in n.casefold()), None)


class PolledInput:
    """An rtmidi input port read by a thread of ours (no Python on the MIDI system's thread)."""

    def __init__(self, api: str | None, name: str, on_message: Callable[[Any], None]) -> None:
        import rtmidi

        self.name = name
        self._rt = rtmidi.MidiIn(getattr(rtmidi, f"API_{api}") if api else rtmidi.API_UNSPECIFIED,
                                 name="VoiceVibe", queue_size_limit=QUEUE_MESSAGES)
        ports = self._rt.get_ports()
        if name not in ports:
            self._rt.delete()
            raise OSError(f"{name} is no longer there")
        self._rt.open_port(ports.index(name), "VoiceVibe In")
        self._rt.ignore_types(sysex=False, timing=True, active_sense=True)  # clock ticks are not controls
        self._on_message = on_message
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="midi-in")
        self._thread.start()

    def _read(self) -> None:
        import mido

        while not self._stop.is_set():
            got = self._rt.get_message()
            if got is None:
                self._stop.wait(POLL_SECONDS)
                continue
            data = got[0]
            try:
                message: Any = mido.Message.from_bytes(data)
            except (ValueError, TypeError, IndexError):
                message = data  # the router counts it as malformed
            self._on_message(message)

    def stop_reading(self) -> None:
        """End the reading thread (the port stays open)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(JOIN_SECONDS)

    def close(self) -> None:
        """Stop reading and close the port (only while the MIDI system is up)."""
        self.stop_reading()
        self._rt.close_port()
        self._rt.delete()


class MidiInput:
    """Listens to one controller (midi.port) on rtmidi's thread; a watcher thread keeps it connected."""

    def __init__(self, config: MidiConfig, on_command: Callable[[Command], None], *,
                 report: Callable[[Status], None] | None = None, on_learn: Callable[[Learned], None] | None = None,
                 state: Callable[[type], bool] = lambda kind: False, backend: Any = None) -> None:
        self.config = config
        self.router = MidiRouter(parse_mapping(config.mapping), state)
        self.on_command, self.on_learn = on_command, on_learn
        self._report = report or (lambda status: None)
        self.backend = backend if backend is not None else open_backend(config.backend)
        self.wanted = config.port.strip()
        self.connected: str | None = None  # the port name while it is open
        self.errors = 0  # callbacks that raised (logged)
        self._port: Any = None
        self._stale: list[Any] = []  # ports whose backend died: never closed (rtmidi + dead JACK = segfault)
        self._lock = threading.Lock()  # the port (never taken on rtmidi's thread: closing waits for it)
        self._router_lock = threading.Lock()
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._said = ""  # the last status, so a missing port is reported once, not every second
        self._failures = 0  # listings that failed in a row
        self._thread = threading.Thread(target=self._watch, name="midi-watch")

    def start(self) -> MidiInput:
        """Start looking for the port."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the watcher and close the port (if its backend is alive)."""
        self._stop.set()
        self._poke.set()
        if self._thread.is_alive():
            self._thread.join(JOIN_SECONDS)
        with self._lock:
            self._close_port()

    def set_port(self, name: str) -> None:
        """Listen to another port (empty: none); the watcher switches at once."""
        with self._lock:
            self.wanted = name.strip()
            self._close_port()
            self._said = ""
        self._poke.set()

    def learn(self, control: str | None) -> None:
        """Arm a control for MIDI learn (None: disarm)."""
        with self._router_lock:
            self.router.learn(control)

    def set_mapping(self, text: str) -> None:
        """Replace the mapping (MappingError names a bad entry)."""
        bindings = parse_mapping(text)
        with self._router_lock:
            self.router.set_mapping(bindings)

    @property
    def counts(self) -> dict[str, int]:
        """Messages acted on, unmapped and malformed (ignored), and callback errors."""
        router = self.router
        return {"handled": router.handled, "unmapped": router.unmapped, "malformed": router.malformed,
                "errors": self.errors}

    # ---- the port's reading thread -----------------------------------------------------------------

    def _on_message(self, message: Any) -> None:
        try:
            with self._router_lock:
                result = self.router.handle(message)
            if isinstance(result, Learned):
                log.info("MIDI learn: %s = %s", result.binding.control, result.binding.source)
                if self.on_learn is not None:
                    self.on_learn(result)
            elif result is not None:
                self.on_command(result)
        except Exception:  # top of rtmidi's callback: a failing command must not silence the controller
            self.errors += 1
            log.exception("MIDI message %r could not be handled", message)

    # ---- the watcher -------------------------------------------------------------------------------

    def _say(self, message: str, level: str = "info") -> None:
        if message != self._said:
            self._said = message
            log.log(logging.WARNING if level != "info" else logging.INFO, "%s", message)
            self._report(Status("midi", message, level))  # type: ignore[arg-type]

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._poll()
            self._poke.wait(self.config.reconnect_seconds)
            self._poke.clear()

    def _poll(self) -> None:
        every = f"looking for it every {self.config.reconnect_seconds:g} s"
        if not self.wanted:
            return
        try:
            names = list(self.backend.get_input_names())
            self._failures = 0
        except OSError as e:
            self._failures += 1
            if self._failures < DOWN_POLLS:
                log.info("listing MIDI ports failed (%s); trying again", e)
                return
            with self._lock:
                if self._port is not None:
                    if isinstance(self._port, PolledInput):
                        self._port.stop_reading()
                    self._stale.append(self._port)  # its server is gone: closing it would crash
                    self._port, self.connected = None, None
            self._say(f"MIDI system unavailable ({e}) — {every}", "error")
            return
        with self._lock:
            if self.connected is not None and self.connected not in names:
                gone = self.connected
                self._close_port()
                self._say(f"MIDI controller {gone} unplugged — {every}", "warning")
            if self.connected is not None:
                return
            name = match_port(names, self.wanted)
            if name is None:
                shown = ", ".join(names) if names else "none"
                self._say(f"MIDI port {self.wanted!r} not found (ports: {shown}) — {every}", "warning")
                return
            try:
                if self.backend.name == "mido.backends.rtmidi":
                    self._port = PolledInput(self.backend.api, name, self._on_message)
                else:  # another mido backend: its own callback thread
                    self._port = self.backend.open_input(name, callback=self._on_message)
            except OSError as e:
                self._say(f"MIDI port {name} cannot be opened ({e}) — {every}", "error")
                return
            self.connected = name
        self._say(f"MIDI: listening to {name}")

    def _close_port(self) -> None:
        """With the lock held: close the open port (its backend is alive)."""
        if self._port is not None:
            try:
                self._port.close()
            except OSError as e:
                log.warning("closing MIDI port %s: %s", self.connected, e)
            self._port, self.connected = None, None
