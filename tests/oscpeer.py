"""A local UDP receiver that decodes OSC, for tests (the independent peer is oscdump; this one is handy)."""

from __future__ import annotations

import queue
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket, ParseError


def free_port() -> int:
    """A UDP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UdpPeer:
    """Receives OSC datagrams on 127.0.0.1:<port> in a thread; `messages` keeps every decoded message."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.messages: list = []
        self.datagrams: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="udp-peer")

    def __enter__(self) -> UdpPeer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.datagrams.append(data)
            try:
                self.messages += [m.message for m in OscPacket(data).messages]
            except ParseError:
                pass

    def wait_for(self, address: str, count: int, timeout: float = 10.0) -> list:
        """The first `count` messages on `address` (fewer if they do not arrive in time)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.messages if m.address == address]
            if len(found) >= count:
                return found[:count]
            time.sleep(0.02)
        return [m for m in self.messages if m.address == address]


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
