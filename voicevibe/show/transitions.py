"""How the picture changes: seeds with each prompt and transitions instead of cuts, per OSC preset.

- `generic`: `/seed i` before the prompt; after it, `/prompt_list s`: JSON `[["old", w], ["new", 1 - w]]`
  ramping to the new prompt over `transition_seconds` at `blend_rate_hz` (one `[["new", 1.0]]` for a cut);
- `scope`: `/scope/transition_steps i` before the prompt (Scope blends itself over that many steps);
- `vocevibe`: nothing around the prompt.

The builders are pure functions returning bytes; `TransitionSender` is an `OscSender` that adds
these messages to every prompt, typed prompt and cue, and steps the blend ramp in a small
thread of its own (it runs only during a transition). A ramp is skipped while frozen or in
panic; a new prompt restarts it from the prompt that was fading in; a prompt held by freeze
comes back as a cut. StreamDiffusion's receiver normalises prompt-list weights by their sum,
but ours always sum to 1.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from voicevibe.config import OscConfig, ShowConfig
from voicevibe.events import ImagePrompt
from voicevibe.osc import (
    OscSender,
    Report,
    addresses_for,
    fit_text,
    message_cap,
    osc_message,
    prompt_datagrams,
    text_budget,
    text_datagrams,
)

log = logging.getLogger(__name__)

SEED_MAX = 2**31 - 1  # an OSC int32, what StreamDiffusion's /seed reads
JOIN_SECONDS = 2.0


def transition_steps(seconds: float, steps_per_second: float) -> int:
    """Scope's transition length in generation steps (0: instant)."""
    return max(0, round(seconds * steps_per_second))


def blend_weights(step: int, steps: int) -> tuple[float, float]:
    """(old, new) weights at `step` of `steps` (1..steps): the new prompt's share grows linearly to 1."""
    new = min(1.0, max(0.0, step / steps))
    return 1.0 - new, new


def blend_json(old: str, new: str, new_weight: float, budget: int) -> str:
    """The StreamDiffusion prompt list `[["old", w_old], ["new", w_new]]` as JSON within `budget` UTF-8 bytes
    (both texts shortened alike when it would not fit); a weight of 1 for the new prompt alone is `[["new", 1.0]]`."""
    def render(a: str, b: str) -> str:
        new = round(new_weight, 6)
        pairs = [[b, 1.0]] if new >= 1.0 and a == b else [[a, round(1.0 - new, 6)], [b, new]]
        return json.dumps(pairs, ensure_ascii=False, separators=(",", ":"))

    text = render(old, new)
    each = (budget - len(render("", "").encode("utf-8"))) // 2  # bytes for each prompt
    while len(text.encode("utf-8")) > budget and each > 0:
        text = render(fit_text(old, each), fit_text(new, each))
        each -= max(1, (len(text.encode("utf-8")) - budget + 1) // 2)  # JSON escapes took more than planned
    return text


def blend_datagram(address: str, old: str, new: str, new_weight: float, config: OscConfig) -> bytes:
    """One blend message: a JSON weighted prompt list."""
    return osc_message(address, blend_json(old, new, new_weight, text_budget(address, message_cap(config)))).dgram


def seed_datagram(address: str, seed: int) -> bytes:
    """The seed as an int32."""
    return osc_message(address, int(seed) % (SEED_MAX + 1)).dgram


def transition_datagram(address: str, steps: int) -> bytes:
    """Scope's transition length (generation steps) for the next prompt change."""
    return osc_message(address, int(steps)).dgram


class SeedState:
    """The seed sent with each prompt: locked (the same until rolled) or new with each prompt; thread-safe."""

    def __init__(self, seed: int, locked: bool, rng: random.Random | None = None) -> None:
        self.current, self.locked = seed, locked
        self._pinned: int | None = None  # a phrase cue's seed, for the prompt the brain will make
        self._rng = rng or random.Random()
        self._lock = threading.Lock()

    def lock(self, on: bool) -> None:
        """Keep the seed (on) or roll one with each prompt (off)."""
        with self._lock:
            self.locked = on

    def roll(self) -> int:
        """A new seed now."""
        with self._lock:
            self.current = self._rng.randint(0, SEED_MAX)
            return self.current

    def pin(self, seed: int) -> None:
        """The next prompt carries this seed, whatever the lock."""
        with self._lock:
            self._pinned = seed

    def for_prompt(self, fixed: int | None = None) -> int:
        """The seed for the next prompt: `fixed` (a cue's), a pinned one, the locked one, or a fresh one."""
        with self._lock:
            if fixed is None:
                fixed, self._pinned = self._pinned, None
            if fixed is not None:
                self.current = fixed
            elif not self.locked:
                self.current = self._rng.randint(0, SEED_MAX)
            return self.current


@dataclass
class _Job:
    old: str
    new: str
    start: float
    seconds: float
    steps: int
    step: int = 0


class Ramp:
    """Calls `send(old, new, new_weight)` at each step of a transition, on its own thread (started on demand)."""

    def __init__(self, send: Callable[[str, str, float], None], clock: Callable[[], float] = time.monotonic) -> None:
        self._send, self._clock = send, clock
        self._cond = threading.Condition()
        self._job: _Job | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self.steps_sent = 0

    def start(self, old: str, new: str, seconds: float, rate_hz: float) -> None:
        """Ramp from `old` to `new` over `seconds`, `rate_hz` messages a second (the last one all `new`)."""
        steps = max(1, math.ceil(seconds * rate_hz))
        with self._cond:
            if self._closed:
                return
            self._job = _Job(old, new, self._clock(), seconds, steps)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="osc-ramp")
                self._thread.start()
            self._cond.notify_all()

    def cancel(self) -> None:
        """Stop the current ramp (panic, freeze)."""
        with self._cond:
            self._job = None
            self._cond.notify_all()

    def close(self) -> None:
        """End the thread."""
        with self._cond:
            self._closed, self._job = True, None
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(JOIN_SECONDS)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and self._job is None:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._job
                assert job is not None
                due = job.start + job.seconds * (job.step + 1) / job.steps
                wait = due - self._clock()
                if wait > 0:
                    self._cond.wait(wait)
                    continue  # look again: a new job or close may have come meanwhile
                job.step += 1
                if job.step >= job.steps:
                    self._job = None
                _, weight = blend_weights(job.step, job.steps)
            try:
                self._send(job.old, job.new, weight)
                self.steps_sent += 1
            except Exception:  # top of the ramp thread: a failed step must not end transitions for the show
                log.exception("blend step failed")


class TransitionSender(OscSender):
    """An OscSender that sends the seed and the transition with every prompt (the preset says which)."""

    def __init__(self, config: OscConfig, report: Report | None = None, *, show: ShowConfig | None = None,
                 clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None) -> None:
        super().__init__(config, report, clock=clock)
        show = show or ShowConfig()
        self.show_config = show
        self.seeds = SeedState(show.seed, show.seed_lock, rng)
        self.transition_seconds = show.transition_seconds
        self._look_lock = threading.Lock()
        self._on_screen = ""  # the prompt that left last (or is fading in)
        self._held_text = ""
        self._ramp = Ramp(self._blend_step, clock)

    @property
    def on_screen(self) -> str:
        """The last prompt text that left."""
        return self._on_screen

    def send_prompt(self, prompt: ImagePrompt) -> float | None:
        """Send a prompt with its seed and transition; when it left, or None (held or blocked)."""
        return self.send_look(prompt.text, prompt_datagrams(prompt, self.config))[0]

    def send_text(self, text: str) -> float | None:
        """Send a typed prompt with its seed and transition; like send_prompt."""
        return self.send_look(" ".join(text.split()), text_datagrams(text, self.config))[0]

    def send_look(self, text: str, datagrams: list[bytes], seed: int | None = None) -> tuple[float | None, int | None]:
        """Send a prompt's datagrams with the look's messages around them; (when it left, the seed sent or None)."""
        if not datagrams:
            return None, None
        addr = addresses_for(self.config)
        seconds = self.transition_seconds
        before = []
        if addr.transition:
            before.append(transition_datagram(addr.transition,
                                              transition_steps(seconds, self.show_config.scope_steps_per_second)))
        sent_seed = self.seeds.for_prompt(seed) if addr.seed else None
        if sent_seed is not None:
            before.append(seed_datagram(addr.seed, sent_seed))
        with self._look_lock:
            old = self._on_screen
        ramp = bool(addr.blend) and seconds > 0 and bool(old) and old != text
        after = [blend_datagram(addr.blend, text, text, 1.0, self.config)] if addr.blend and not ramp else []
        sent_at = self._send([*before, *datagrams, *after], hold="prompt")
        with self._look_lock:
            if sent_at is not None:
                self._on_screen = text
            elif self.frozen:
                self._held_text = text
        if sent_at is not None and ramp:
            self._ramp.start(old, text, seconds, self.show_config.blend_rate_hz)
        elif sent_at is not None:
            self._ramp.cancel()
        return sent_at, sent_seed

    def set_transition(self, seconds: float) -> None:
        """The transition length from the next prompt on (0: a cut)."""
        self.transition_seconds = max(0.0, float(seconds))

    def new_seed(self) -> int:
        """Roll a new seed and send it at once where the preset carries one (not while frozen or in panic)."""
        seed = self.seeds.roll()
        address = addresses_for(self.config).seed
        if address and not self.frozen:
            self._send([seed_datagram(address, seed)])
        return seed

    def freeze(self, on: bool) -> float | None:
        """Freeze (the ramp stops) or release (the held prompt comes back as a cut)."""
        if on:
            self._ramp.cancel()
        sent_at = super().freeze(on)
        if sent_at is not None:
            with self._look_lock:
                self._on_screen = self._held_text or self._on_screen
        return sent_at

    def panic(self, on: bool) -> float | None:
        """Panic: the ramp stops and the safe prompt is a cut (Scope: 0 transition steps first)."""
        address = addresses_for(self.config).transition
        if on:
            self._ramp.cancel()
            if address:
                self._send([transition_datagram(address, 0)], force=True)
        sent_at = super().panic(on)
        if on and sent_at is not None:
            with self._look_lock:
                self._on_screen = self.config.panic_prompt
        return sent_at

    def close(self) -> None:
        """Stop the ramp thread, then close the sockets."""
        self._ramp.close()
        super().close()

    def _blend_step(self, old: str, new: str, weight: float) -> None:
        if self.frozen or self.panicked:
            return
        address = addresses_for(self.config).blend
        if address:
            self._send([blend_datagram(address, old, new, weight, self.config)])
