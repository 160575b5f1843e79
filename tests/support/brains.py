"""Brain models for tests that run in the brain's worker process: module-level, so they cross by name."""

from __future__ import annotations

import json
import time
from typing import Any

from voicevibe.brain.prompting import Abandoned, LoadedModel


class CrashThenHang:
    """Raises on the first phrase, hangs on the second until told to stop, then works."""

    name = "crash-then-hang"

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, request: Any, should_stop: Any) -> str:
        if request.phrase == "warm up":  # the brain's load-time call
            return json.dumps({"style": "cinematic", "prompt": "warm", "mood": "calm"})
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("llama.cpp exploded")
        if self.calls == 2:
            while not (reason := should_stop()):
                time.sleep(0.01)
            raise Abandoned(reason)
        return json.dumps({"style": "cinematic", "prompt": "a quiet harbour at dawn", "mood": "calm"})

    def summarize(self, request: Any, should_stop: Any) -> str:
        raise RuntimeError("no summaries here")


class CrashesAlways:
    """Every call raises, the warm-up included."""

    name = "crashes-always"

    def generate(self, request: Any, should_stop: Any) -> str:
        raise RuntimeError("llama.cpp exploded")

    def summarize(self, request: Any, should_stop: Any) -> str:
        raise RuntimeError("llama.cpp exploded")


def crash_then_hang(config: Any, assets: Any) -> LoadedModel:
    return LoadedModel(CrashThenHang())


def crashes_always(config: Any, assets: Any) -> LoadedModel:
    return LoadedModel(CrashesAlways())


class TooSlow:
    """Answers the warm-up at once, then thinks about each phrase until the brain gives up on it."""

    name = "too-slow"

    def generate(self, request: Any, should_stop: Any) -> str:
        if request.phrase == "warm up":
            return json.dumps({"style": "cinematic", "prompt": "warm", "mood": "calm"})
        while not (reason := should_stop()):
            time.sleep(0.01)
        raise Abandoned(reason)

    def summarize(self, request: Any, should_stop: Any) -> str:
        raise RuntimeError("no summaries here")


def too_slow_standing_in(config: Any, assets: Any) -> LoadedModel:
    """A brain over any budget, loaded with a note, as the bundled model standing in for a missing one is."""
    return LoadedModel(TooSlow(), note="the configured brain model is not on disk: too-slow stands in")
