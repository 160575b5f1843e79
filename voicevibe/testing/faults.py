"""Worker loaders that misbehave on purpose, for the fault tests (they run in the worker process).

Each is a module-level function (so it crosses the process boundary by name; the model's code is
imported inside it, in the worker only) wrapping the real loader: a native crash at load, a step
that raises at a given block, a brain model that hangs
in "C code" (ignoring its stop requests, as a wedged llama.cpp call would) or that answers slowly.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import time
from typing import Any

from voicevibe.brain.assets import Assets
from voicevibe.brain.prompting import LoadedModel
from voicevibe.config import BrainConfig, SttConfig


def crash_at_load(config: SttConfig | BrainConfig, *args: Any, after: float = 0.0) -> Any:
    """A native crash (SIGSEGV) while the model loads, as a broken checkpoint can cause; `after` seconds
    of loading first (a big model that runs out of memory late)."""
    time.sleep(after)
    ctypes.string_at(0)


def stt_failing_at(config: SttConfig, progress: Any, block: int) -> Any:
    """The real speech model, whose Mimi encoder raises at its `block`-th call (counted per process)."""
    from voicevibe.speech.worker import load_stt  # MLX: imported in the worker process only

    model = load_stt(config, progress)
    calls = [0]
    real_new_mimi = model.new_mimi

    class Failing:
        def __init__(self) -> None:
            self.inner = real_new_mimi()

        def encode_step(self, pcm: Any) -> Any:
            calls[0] += 1
            if calls[0] == block:
                raise RuntimeError("simulated MLX failure")
            return self.inner.encode_step(pcm)

    model.new_mimi = Failing  # type: ignore[method-assign]
    model._spare_mimi = None
    return model


def stt_slow(config: SttConfig, progress: Any, seconds: float, build_seconds: float = 0.0) -> Any:
    """The real speech model, made slower than real time: each block's encoding takes `seconds` more,
    and each stream's codec (built at its start and at every state reset) `build_seconds` more."""
    from voicevibe.speech.worker import load_stt  # MLX: imported in the worker process only

    model = load_stt(config, progress)
    real_new_mimi = model.new_mimi

    class Slow:
        def __init__(self) -> None:
            time.sleep(build_seconds)
            self.inner = real_new_mimi()

        def encode_step(self, pcm: Any) -> Any:
            time.sleep(seconds)
            return self.inner.encode_step(pcm)

    model.new_mimi = Slow  # type: ignore[method-assign]
    model._spare_mimi = None
    return model


def stt_always_failing(config: SttConfig, progress: Any) -> Any:
    """The real speech model, whose every step raises: the worker must not loop on it forever."""
    from voicevibe.speech.worker import load_stt  # MLX: imported in the worker process only

    model = load_stt(config, progress)

    class Broken:
        def encode_step(self, pcm: Any) -> Any:
            raise RuntimeError("simulated broken step")

    model.new_mimi = Broken  # type: ignore[method-assign]
    model._spare_mimi = None
    return model


@dataclasses.dataclass
class ScriptedPrompts:
    """A brain model answering every phrase with `prompt`, after `delay` seconds (obeying stops), or
    hanging for good (`hang`: it never looks at its stop requests), or failing with an error no model
    wrapper expects for phrases containing `fails_on` (a TypeError: a bug, not a model error)."""

    prompt: str = "a lighthouse in a violet storm"
    delay: float = 0.0
    hang: bool = False
    fails_on: str = ""
    name: str = "scripted"

    def generate(self, request: Any, should_stop: Any) -> str:
        """The JSON answer, like a real model's."""
        if self.hang and request.phrase != "warm up":
            time.sleep(3600)
        if self.fails_on and self.fails_on in request.phrase:
            raise TypeError("simulated bug: 'NoneType' object is not subscriptable")
        end = time.monotonic() + self.delay
        while time.monotonic() < end:
            reason = should_stop()
            if reason:
                from voicevibe.brain.prompting import Abandoned

                raise Abandoned(reason)
            time.sleep(0.01)
        return json.dumps({"style": request.style.name, "prompt": self.prompt, "mood": "calm"})

    def summarize(self, request: Any, should_stop: Any) -> str:
        """A summary answer."""
        return json.dumps({"summary": "A scripted show goes on and on.", "prompt": self.prompt})


def scripted_brain(config: BrainConfig, assets: Assets, **kwargs: Any) -> LoadedModel:
    """A brain worker loader for `ScriptedPrompts(**kwargs)` (use functools.partial)."""
    return LoadedModel(ScriptedPrompts(**kwargs))
