"""An OSC target: its address looked up on a thread of its own, its connected UDP socket, its counters.

A name lookup (`getaddrinfo`) can take seconds: an unreachable `.local` name waits for mDNS, a
dead DNS server for its timeout. So it never runs on the caller's thread (the window's, the
outbox's) nor under the sender's lock: each target looks its host name up on a short-lived thread
of its own, and one slow name never delays another target (an IP address needs no lookup).
`OscSender` (osc.py) decides what waits: until a target's first lookup answers, its datagrams
wait in a short queue and leave when the address is known; after a failed lookup they are lost
and counted, as for any unreachable target.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import threading
from collections import deque
from collections.abc import Callable

from voicevibe import macos
from voicevibe.events import TargetStatus

log = logging.getLogger(__name__)

FAILING_SECONDS = 30.0  # a target is shown failing this long after its last error (UDP has no "ok")
PENDING_DATAGRAMS = 64  # datagrams kept while a target's first lookup runs (a prompt is 1-4); older ones are lost
LOCAL_NETWORK_ERRORS = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EPERM})

Connector = Callable[[str, int], socket.socket]  # looks the host up and returns a connected UDP socket (may block)
Outcome = socket.socket | OSError


def connect_udp(host: str, port: int) -> socket.socket:
    """Resolve `host` (may block for seconds) and connect a non-blocking UDP socket to it (raises OSError).

    Connected, so an ICMP refusal of an earlier datagram surfaces on a later send.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    except UnicodeError as e:  # a host name IDNA cannot encode
        raise OSError(f"not a valid host name ({e})") from e
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)  # a full send buffer is an error, never a stalled pipeline
        sock.connect(address)
    except OSError:
        sock.close()
        raise
    return sock


def target_name(host: str, port: int) -> str:
    """How a target is named to the operator: `host:port`, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_address(host: str) -> bool:
    """True for an IPv4 or IPv6 address (a scope like `%en0` allowed): connecting to it looks nothing up."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def send_error(target: str, error: OSError) -> str:
    """What a failed send or lookup says: the errno's own words, and on macOS, for an error its Local Network
    permission causes, where to allow it."""
    text = f"{target}: {error.strerror or error}"
    if macos.on_mac() and error.errno in LOCAL_NETWORK_ERRORS:
        text += f" — {macos.LOCAL_NETWORK_FIX}"
    return text


class Target:
    """One receiver: host and port, the socket once its address is known, the datagrams waiting for it, counters.

    The sender's lock guards every field; `start_lookup` runs the lookup on its own thread and hands the
    outcome (a connected socket or the OSError) to `done`, which takes that lock itself.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.name = target_name(host, port)
        self.sock: socket.socket | None = None
        self.looking_up = False
        self.answered = False  # a lookup has answered (an address or an error): datagrams no longer wait
        self.waiting: deque[bytes] = deque()
        self.sent = self.errors = 0
        self.last_send: float | None = None
        self.last_error = ""
        self.last_error_at = self.retry_at = float("-inf")

    def status(self, now: float) -> TargetStatus:
        """A snapshot of the counters at monotonic time `now`."""
        failing = now - self.last_error_at < FAILING_SECONDS
        return TargetStatus(self.name, self.sent, self.errors, self.last_send, self.last_error, failing)

    def wait(self, dgram: bytes) -> int:
        """Keep a datagram until the first lookup answers; how many older ones this pushed out (lost)."""
        self.waiting.append(dgram)
        lost = max(0, len(self.waiting) - PENDING_DATAGRAMS)
        for _ in range(lost):
            self.waiting.popleft()
        return lost

    def start_lookup(self, connect: Connector, done: Callable[[Target, Outcome], None]) -> None:
        """Look the host up and connect on a new thread; `done(self, outcome)` is called from that thread."""
        self.looking_up = True
        # A daemon: getaddrinfo cannot be interrupted, and a lookup holds no device, so closing never waits for it.
        threading.Thread(target=self._lookup, args=(connect, done), name=f"osc-lookup {self.name}",
                         daemon=True).start()

    def _lookup(self, connect: Connector, done: Callable[[Target, Outcome], None]) -> None:
        try:
            outcome: Outcome = connect(self.host, self.port)
        except OSError as e:
            outcome = e
        except Exception as e:  # the top of the lookup's thread: the target must get an answer, or it waits forever
            log.exception("looking up %s failed", self.name)
            outcome = OSError(f"the lookup failed ({type(e).__name__}: {e})")
        done(self, outcome)

    def close(self) -> None:
        """Close the socket; what still waits is dropped."""
        self.waiting.clear()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
