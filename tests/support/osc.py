"""OSC receivers for tests (liblo's oscdump, the independent peer; voicevibe.testing.peer.OscPeer), and lookups
and sockets that misbehave as a stage network does (a slow name, a send macOS refuses)."""

from __future__ import annotations

import errno
import os
import queue
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder

from voicevibe.osc_targets import connect_udp


def free_port() -> int:
    """A UDP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def oscdump() -> Iterator[tuple[int, queue.Queue]]:
    """liblo's oscdump on a free port; its output lines arrive on the queue."""
    port = free_port()
    proc = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line.decode("utf-8").rstrip("\n")) for line in proc.stdout])
    reader.start()
    yield port, lines
    proc.terminate()
    proc.wait(timeout=10)
    reader.join(timeout=10)


def dump_lines(port: int, lines: queue.Queue, send) -> list[str]:
    """Wait until oscdump answers a probe, run `send`, then collect everything up to an end marker."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        seen = ""
        for _ in range(100):  # oscdump needs a moment to bind
            probe.sendto(OscMessageBuilder("/probe").build().dgram, ("127.0.0.1", port))
            try:
                seen = lines.get(timeout=0.1)
                break
            except queue.Empty:
                continue
        assert "/probe" in seen
        send()
        probe.sendto(OscMessageBuilder("/end").build().dgram, ("127.0.0.1", port))
        out = []
        while (address := (line := lines.get(timeout=10)).split(" ")[1]) != "/end":
            if address != "/probe":
                out.append(line)
    return out


class SlowLookup:
    """A `connect` for OscSender: `slow_host` is looked up slowly (a real `sleep`, or until `gate` is set), then
    connected to 127.0.0.1:`port` (or fails with `error`); every other host goes to the real lookup.

    `started` is set when the slow lookup begins and `finished` when it ends; `threads` holds the thread
    each slow lookup ran on (never the caller's)."""

    def __init__(self, slow_host: str, port: int, *, sleep: float = 0.0, error: OSError | None = None) -> None:
        self.slow_host, self.port, self.sleep, self.error = slow_host, port, sleep, error
        self.gate = threading.Event()
        self.started, self.finished = threading.Event(), threading.Event()
        self.threads: list[threading.Thread] = []

    def __call__(self, host: str, port: int) -> socket.socket:
        if host != self.slow_host:
            return connect_udp(host, port)
        self.threads.append(threading.current_thread())
        self.started.set()
        try:
            if self.sleep:
                time.sleep(self.sleep)  # what an unreachable .local name costs getaddrinfo
            else:
                self.gate.wait()
            if self.error is not None:
                raise self.error
            return connect_udp("127.0.0.1", self.port)
        finally:
            self.finished.set()


class RefusingSocket(socket.socket):
    """A real UDP socket whose every send fails with one errno, as macOS fails an app's sends to the LAN
    before the Local Network permission is given (EHOSTUNREACH, ENETUNREACH or EPERM)."""

    error_number = errno.EHOSTUNREACH

    def send(self, data: object, flags: int = 0) -> int:  # type: ignore[override]
        raise OSError(self.error_number, os.strerror(self.error_number))


def refusing_connect(error_number: int) -> Callable[[str, int], socket.socket]:
    """A `connect` for OscSender whose sockets refuse every send with `error_number`."""
    def connect(host: str, port: int) -> socket.socket:
        sock = RefusingSocket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.error_number = error_number
        sock.connect((host, port))
        return sock

    return connect
