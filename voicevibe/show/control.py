"""Show control: the loaded show's cues fired from every surface, spoken triggers, seeds and transitions.

`ShowControl` lives as long as the app, beside its OSC sender (runtime/controls.py makes both), so
cues, seeds and transitions work whether or not a show runs. `apply(command)` takes the show
commands of events.py, from any thread:

- a **fixed-prompt cue** goes out at once on the calling thread, bypassing the brain: the cue's
  style and vibe become the brain's (the next spoken prompts keep the scene), then the prompt with
  its seed (the cue's own, or the seed policy's) and the preset's transition;
- a **phrase cue** sets the style and vibe, pins its seed for the next prompt and hands its phrase
  to the brain as if spoken; its prompt follows at brain speed;
- next/previous move through the show; seed lock, new seed and transition time act on the sender.

Each fired cue is posted and logged as a `CueFired` event (`voicevibe replay` re-sends it).
`hear(event)` runs the transcript through the trigger matcher; a hit is a `FireCue(via="voice")`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from voicevibe.config import Config
from voicevibe.events import (
    BrainCommand,
    CueFired,
    Event,
    FireCue,
    ImagePrompt,
    NewSeed,
    NextCue,
    PhraseEnd,
    PreviousCue,
    SeedLock,
    SetStyle,
    SetTransition,
    SetVibe,
    ShowCommand,
    Status,
    Word,
)
from voicevibe.osc import prompt_datagrams
from voicevibe.show.file import Cue, ShowFile, load_show
from voicevibe.show.transitions import TransitionSender
from voicevibe.show.triggers import Trigger, TriggerMatcher, normalize_words

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CueHooks:
    """Where show control's results go: the front end, the session log, the brain."""

    post: Callable[[Event], None]  # events and statuses for the front end
    log: Callable[..., None]  # the session log's write(event, **extra) (nothing when no show runs)
    brain: Callable[[BrainCommand], None]  # brain commands (style, vibe)
    say: Callable[[str], None]  # a phrase cue's phrase, for the brain as if spoken


class ShowControl:
    """The loaded show and where it stands; fires cues on its sender; thread-safe. Lives as long as the app."""

    def __init__(self, config: Config, sender: TransitionSender, hooks: CueHooks, *,
                 styles: Collection[str] | None = None) -> None:
        self.config = config
        self.sender = sender
        self.styles = styles
        self.file: ShowFile | None = None
        self.next_number = 1  # the cue NextCue fires (highlighted in the window)
        self.last_number: int | None = None
        self.version = 0  # bumped at every change: front ends redraw when it moves
        self._hooks = hooks
        self._lock = threading.RLock()
        self._matcher: TriggerMatcher | None = None

    def load(self, path: str | Path) -> ShowFile:
        """Load a show file (ShowError names the file, the cue and the key); its defaults apply now."""
        show = load_show(path, styles=self.styles)
        with self._lock:
            self.file = show
            self.next_number, self.last_number = 1, None
            triggers = [Trigger(c.number, normalize_words(t), t) for c in show.cues for t in c.triggers]
            self._matcher = TriggerMatcher(triggers, self.config.show.trigger_cooldown_seconds) if triggers else None
            self._show_defaults(show, self.sender)
            self.version += 1
        log.info("show %s loaded: %d cues", show.path, len(show.cues))
        return show

    def _show_defaults(self, show: ShowFile, sender: TransitionSender) -> None:
        if show.transition_seconds is not None:
            sender.set_transition(show.transition_seconds)
        if show.seed_lock is not None:
            sender.seeds.lock(show.seed_lock)
        if show.seed is not None:
            sender.seeds.current = show.seed

    # ---- commands --------------------------------------------------------------------------------

    def apply(self, command: ShowCommand) -> CueFired | None:
        """Carry out a show command; the CueFired event when a cue went out (or to the brain)."""
        with self._lock:
            result = None
            if isinstance(command, FireCue):
                result = self._fire_named(command.cue, command.via, command.heard)
            elif isinstance(command, NextCue):
                result = self._fire_number(self.next_number, command.via, "", "the show's last cue has been fired")
            elif isinstance(command, PreviousCue):
                target = (self.last_number or 1) - 1
                result = self._fire_number(target, command.via, "", "already at the first cue")
            elif isinstance(command, SeedLock):
                self.sender.seeds.lock(command.on)
            elif isinstance(command, NewSeed):
                seed = self.sender.new_seed()
                log.info("new seed %d", seed)
            elif isinstance(command, SetTransition):
                self.sender.set_transition(command.seconds)
            else:
                raise TypeError(f"not a show command: {command!r}")
            self.version += 1
            return result

    def hear(self, event: Word | PhraseEnd) -> FireCue | None:
        """One transcript event through the trigger matcher; the cue its words fire, if any."""
        with self._lock:
            if self._matcher is None:
                return None
            hit = self._matcher.step(event)
        if hit is None:
            return None
        log.info("heard %r: cue %d", hit.heard, hit.cue)
        return FireCue(hit.cue, via="voice", heard=hit.heard)

    def _fire_named(self, wanted: int | str, via: str, heard: str) -> CueFired | None:
        cue = self.file.find(wanted) if self.file is not None else None
        if cue is None:
            self._refuse(f"no cue {wanted!r}" + (f" in {self.file.name} (cues 1-{len(self.file.cues)})"
                                                  if self.file else ": no show loaded (Load show…, or --show FILE)"))
            return None
        return self._fire(cue, via, heard)

    def _fire_number(self, number: int, via: str, heard: str, past_end: str) -> CueFired | None:
        if self.file is None:
            self._refuse("no show loaded (Load show…, or --show FILE)")
            return None
        if not 1 <= number <= len(self.file.cues):
            self._refuse(past_end)
            return None
        return self._fire(self.file.cues[number - 1], via, heard)

    def _refuse(self, why: str) -> None:
        log.info("cue not fired: %s", why)
        self._hooks.post(Status("show", f"cue not fired: {why}", "warning"))

    def _fire(self, cue: Cue, via: str, heard: str) -> CueFired | None:
        hooks, sender = self._hooks, self.sender
        if cue.style:
            hooks.brain(SetStyle(cue.style))
        if cue.vibe is not None:
            hooks.brain(SetVibe(cue.vibe))
        if cue.phrase:
            if cue.seed is not None:
                sender.seeds.pin(cue.seed)
            hooks.say(cue.phrase)
            event = CueFired(cue.number, cue.name, cue.phrase, via, cue.seed, False, heard, phrase=True)
            sent_at = None
        else:
            style = cue.style or self.config.brain.style
            prompt = ImagePrompt(cue.prompt, f"cue {cue.number}: {cue.name}", style, "", "cue")
            sent_at, seed = sender.send_look(cue.prompt, prompt_datagrams(prompt, sender.config), cue.seed)
            event = CueFired(cue.number, cue.name, cue.prompt, via, seed, sent_at is not None, heard)
        self.last_number, self.next_number = cue.number, cue.number + 1
        hooks.post(event)
        hooks.log(event, sent_at=sent_at)
        return event
