"""`voicevibe doctor`'s OSC rows: each target's name resolves, and a probe datagram leaves for it.

Since macOS 15 an app must be allowed on the local network before it may send to the render PC;
until then its sends fail with EHOSTUNREACH, ENETUNREACH or EPERM, and the row says where to allow
it. A terminal's tools are exempt, so `doctor` run from Terminal passes where the .app would not:
the ok row on a Mac says to open the app once and allow it. The probe is one OSC message
(`/voicevibe/doctor s "probe"`) that a receiver ignores; a second one a moment later surfaces the
ICMP refusal of the first, so the row can say that nothing listens there yet.
"""

from __future__ import annotations

import errno
import queue
import socket
import threading
import time
from collections.abc import Callable

from voicevibe import macos
from voicevibe.config import ConfigError, parse_targets
from voicevibe.doctor.rows import Row
from voicevibe.osc import osc_message
from voicevibe.osc_targets import LOCAL_NETWORK_ERRORS, Connector, Outcome, target_name

NAME = "OSC target"
LOOKUP_SECONDS = 10.0  # a name that has not resolved by then would not resolve during the show either
REFUSAL_SECONDS = 0.3  # time for an ICMP "port unreachable" to come back before the second probe
PROBE = osc_message("/voicevibe/doctor", "probe").dgram
USE_AN_ADDRESS = ("use the render PC's IP address in osc.targets (or --osc HOST:PORT), or fix the name on the "
                  "stage network")


def check_targets(targets: str, *, mac: bool, connect: Connector,
                  wait: Callable[[float], None] = time.sleep) -> list[Row]:
    """One row per OSC target in `targets` (osc.targets): resolved, and a probe datagram sent."""
    try:
        parsed = parse_targets(targets)
    except ConfigError as e:
        return [Row("OSC targets", False, str(e), "fix osc.targets in config.toml (host:port, comma-separated)")]
    if not parsed:
        return [Row("OSC targets", True, "none: prompts go nowhere (set osc.targets to the render PC)")]
    return [probe_target(host, port, mac=mac, connect=connect, wait=wait) for host, port in parsed]


def probe_target(host: str, port: int, *, mac: bool, connect: Connector,
                 wait: Callable[[float], None] = time.sleep) -> Row:
    """Look `host` up (at most LOOKUP_SECONDS), send the probe twice, and say what happened."""
    name = target_name(host, port)
    outcome = _look_up(host, port, connect)
    if outcome is None:
        return Row(NAME, False, f"{name}: the name did not resolve within {LOOKUP_SECONDS:g} s", USE_AN_ADDRESS)
    if isinstance(outcome, socket.gaierror):
        return Row(NAME, False, f"{name} does not resolve ({outcome})", USE_AN_ADDRESS)
    if isinstance(outcome, OSError):
        return _refused(name, outcome, mac)
    with outcome:
        try:
            outcome.send(PROBE)
            wait(REFUSAL_SECONDS)
            outcome.send(PROBE)
        except ConnectionRefusedError:
            return Row(NAME, True, f"{name}: a probe datagram left, but nothing listens there yet (start the render "
                       "PC's OSC receiver before the show, or check the port)")
        except OSError as e:
            return _refused(name, e, mac)
    note = (": from a terminal macOS never asks; the app asks on its first send, so open VoiceVibe.app once and "
            "allow it on the local network" if mac else "")
    return Row(NAME, True, f"{name} resolves and takes a probe datagram{note}")


def _look_up(host: str, port: int, connect: Connector) -> Outcome | None:
    """The connected socket or the error, or None when the lookup is still running after LOOKUP_SECONDS."""
    answers: queue.Queue[Outcome] = queue.Queue()

    def look_up() -> None:
        try:
            answers.put(connect(host, port))
        except OSError as e:
            answers.put(e)

    # A daemon: getaddrinfo cannot be interrupted, and doctor must end on time even if it never answers.
    threading.Thread(target=look_up, name=f"doctor-lookup {host}", daemon=True).start()
    try:
        return answers.get(timeout=LOOKUP_SECONDS)
    except queue.Empty:
        return None


def _refused(name: str, error: OSError, mac: bool) -> Row:
    """A failed send (or connect); on a Mac, an error the Local Network permission causes says where to allow it."""
    detail = f"{name}: a probe datagram could not be sent ({error.strerror or error})"
    if mac and error.errno in LOCAL_NETWORK_ERRORS:
        return Row(NAME, False, detail, macos.LOCAL_NETWORK_FIX)
    if error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return Row(NAME, False, detail, "check the render PC's address, the cable or Wi-Fi, and that both machines "
                   "are on the same network")
    return Row(NAME, False, detail, "check the render PC's address and this machine's network settings")
