"""What VoiceVibe does differently on a Mac, written so that it runs (and is tested) anywhere.

Every Mac-only branch asks `on_mac()`, which reads `PLATFORM` (tests set it). Nothing here
imports a Mac-only module at import time: pyobjc's `Foundation` is imported when an activity
begins, so a stub module stands in for it in the tests.

App Nap: macOS throttles the timers and threads of an app whose windows are hidden or in the
background, and a headless process may be coalesced the same way. A show holds an
NSProcessInfo activity (user-initiated, latency-critical, display kept awake) from Start to Stop;
the token is kept until `end()` because the activity lasts as long as someone holds it and
calls endActivity_ (Apple's documented pattern; appnope and Lapcat's article keep it too).
"""

from __future__ import annotations

import logging
import sys
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

PLATFORM = sys.platform
MIC_SETTINGS = "System Settings > Privacy & Security > Microphone"
LOCAL_NETWORK_SETTINGS = "System Settings > Privacy & Security > Local Network"
# Since macOS 15 an app needs this permission to send to the LAN (a terminal's tools are exempt, so a rehearsal
# started from Terminal never meets it); a denied send fails with EHOSTUNREACH, ENETUNREACH or EPERM.
LOCAL_NETWORK_FIX = (f"allow VoiceVibe in {LOCAL_NETWORK_SETTINGS} (macOS blocks an app's sends to the local "
                     "network until it is allowed); if it is allowed, check the render PC's address and the network")
ACTIVITY_REASON = "VoiceVibe live show: audio, speech recognition and OSC must run on time"


def on_mac() -> bool:
    """True on macOS (as far as VoiceVibe's Mac-only branches are concerned)."""
    return PLATFORM == "darwin"


def silent_input_fix(mac: bool | None = None) -> str:
    """What to do when a live input delivers exact zeros (on a Mac: the microphone permission)."""
    if on_mac() if mac is None else mac:
        return (f"allow VoiceVibe (or Terminal, when started from a terminal) in {MIC_SETTINGS}, "
                "then press Stop and Start (or restart the app)")
    return ("check that the input is not muted and is the one the performer uses "
            "(pavucontrol or alsamixer), then press Stop and Start")


def activity_options(foundation: Any) -> int:
    """User-initiated (no App Nap, no idle system sleep), latency-critical, and the display kept on."""
    return (foundation.NSActivityUserInitiated | foundation.NSActivityLatencyCritical
            | foundation.NSActivityIdleDisplaySleepDisabled)


class Activity:
    """An NSProcessInfo activity held while a show runs (does nothing off macOS); begin/end or `with`."""

    def __init__(self, reason: str = ACTIVITY_REASON) -> None:
        self.reason = reason
        self._token: Any = None  # kept for the activity's whole life

    @property
    def active(self) -> bool:
        """True while the activity is held."""
        return self._token is not None

    def begin(self) -> None:
        """Take the activity (idempotent); a missing pyobjc is a warning, never a stop."""
        if not on_mac() or self._token is not None:
            return
        try:
            import Foundation  # pyobjc-framework-Cocoa, a darwin-only dependency
        except ImportError as e:
            log.warning("App Nap may slow the show down: pyobjc's Foundation is missing (%s); "
                        "run scripts/setup.sh again", e)
            return
        info = Foundation.NSProcessInfo.processInfo()
        self._token = info.beginActivityWithOptions_reason_(activity_options(Foundation), self.reason)
        log.debug("App Nap activity begun: %s", self.reason)

    def end(self) -> None:
        """Give the activity back (idempotent)."""
        token, self._token = self._token, None
        if token is None:
            return
        import Foundation

        Foundation.NSProcessInfo.processInfo().endActivity_(token)
        log.debug("App Nap activity ended")

    def __enter__(self) -> Activity:
        self.begin()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.end()
