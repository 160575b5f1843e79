"""Every operator command, from every surface, whether or not a show runs: the one command path.

`Controls` lives as long as the engines. It owns what outlives a show: the OSC sender (panic,
freeze and typed prompts reach the screen with no show running), show control (cues, seeds,
transitions), the DSP settings, and the outbox that sends the brain's answers. The window, the
terminal, OSC control in, MIDI and spoken triggers all call `apply(command)`, from any thread.
A running show attaches its session log to the event feed; every command is logged there.
A typed phrase (`SayText`) and a phrase cue go to the brain at any time; their prompt comes
back through the outbox.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from voicevibe.config import Config
from voicevibe.dsp import Dsp
from voicevibe.events import (
    BRAIN_COMMANDS,
    SHOW_COMMANDS,
    Command,
    Freeze,
    Panic,
    Phrase,
    SayText,
    SendPrompt,
    SetAgc,
    SetGain,
    SetGate,
    snake_name,
)
from voicevibe.runtime.engines import Engines
from voicevibe.runtime.outbox import Outbox
from voicevibe.show.control import CueHooks, ShowControl
from voicevibe.show.transitions import TransitionSender

log = logging.getLogger(__name__)


class Controls:
    """The commands' one path, and what lives as long as the engines beside them (OSC, cues, DSP, outbox)."""

    def __init__(self, config: Config, engines: Engines) -> None:
        self.config, self.engines, self.feed = config, engines, engines.feed
        self.osc = TransitionSender(config.osc, report=self.feed.post, show=config.show)
        self.cues = ShowControl(config, self.osc, CueHooks(self.feed.post, self.feed.log, engines.brain.command,
                                                            self._cue_phrase), styles=engines.brain.assets.styles)
        if config.show.file:
            try:
                self.cues.load(config.show.file)  # ShowError (file, cue, key) before anything starts
            except BaseException:
                self.osc.close()
                raise
        self.dsp = Dsp(config.dsp)  # one input at a time; a show resets its state (Pipeline), the settings stay
        self.outbox = Outbox(self.osc, self.feed, config.osc)
        engines.brain.attach(self.outbox.put)
        self.outbox.start()
        self.closed = False

    def apply(self, command: Command) -> None:
        """Carry out an operator's command, the same from every surface (any thread); each one is logged."""
        if isinstance(command, SetGain):
            self.dsp.update(gain_db=command.db)
        elif isinstance(command, SetGate):
            self.dsp.update(gate_threshold=command.threshold)
        elif isinstance(command, SetAgc):
            self.dsp.update(agc=command.on)
        elif isinstance(command, Freeze):
            self.osc.freeze(command.on)
        elif isinstance(command, Panic):
            self.osc.panic(command.on)
        elif isinstance(command, SendPrompt):
            self._send_prompt(command.text)
        elif isinstance(command, SayText):
            self.say(command.text)
        elif isinstance(command, BRAIN_COMMANDS):
            self.engines.brain.command(command)
        elif isinstance(command, SHOW_COMMANDS):
            self.cues.apply(command)
        else:
            raise TypeError(f"not a command: {command!r}")
        if not isinstance(command, (SendPrompt, SayText)):  # those log their own line
            self.feed.log({"type": "control", "action": snake_name(type(command)), **dataclasses.asdict(command)})

    def say(self, text: str) -> None:
        """A typed phrase for the brain, as if spoken (never held back: typed lines always go)."""
        if text.strip():
            self.phrase(Phrase(text.strip(), 0.0, 0.0, "typed", closed_at=time.monotonic()))

    def phrase(self, phrase: Phrase) -> None:
        """A phrase on its way to the brain: shown, logged, sent as the transcript (when configured)."""
        self.feed.post(phrase)
        self.feed.log(phrase)
        if self.config.osc.send_transcript:
            self.osc.send_phrase(phrase)
        self.engines.brain.put(phrase)

    def _cue_phrase(self, text: str) -> None:
        self.phrase(Phrase(text, 0.0, 0.0, "cue", closed_at=time.monotonic()))

    def _send_prompt(self, text: str) -> None:
        text = text.strip()
        if text:
            sent = self.osc.send_text(text)
            self.feed.log({"type": "manual_prompt", "text": text, "sent": sent is not None})

    def close(self) -> None:
        """Send what the outbox holds, then close the OSC sender (idempotent); the engines are their owner's."""
        if not self.closed:
            self.closed = True
            self.engines.brain.detach()
            self.outbox.stop()
            self.osc.close()
