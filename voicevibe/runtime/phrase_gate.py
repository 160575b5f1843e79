"""The speech engine's events on a thread of their own: shown, logged, heard for cues, made into phrases.

The speech stage's pipe reader only hands each block's events to `put` (a queue); everything
else happens here, so slow app work never counts against the speech engine. Each event is shown
and logged; words and pauses go past the show's spoken triggers (a hit fires its cue) and into
the phrase assembler; a closed phrase goes to the brain unless the phrase hygiene keeps it back
(noise, fillers, too short) or it fired a cue.
"""

from __future__ import annotations

import logging
import queue
import threading

from voicevibe.config import FRAME_SECONDS, Config
from voicevibe.events import Phrase, PhraseDropped, PhraseEnd, Status, Word
from voicevibe.runtime.controls import Controls
from voicevibe.show.triggers import parse_word_list, phrase_problem
from voicevibe.speech.phrases import PhraseAssembler
from voicevibe.speech.stage import SpeechEvents

log = logging.getLogger(__name__)

JOIN_SECONDS = 10.0
_STOP = object()


class PhraseGate:
    """From the speech engine's events to the brain's phrases; `put` from any thread, never blocking."""

    def __init__(self, config: Config, controls: Controls) -> None:
        self.config, self.controls, self.feed = config, controls, controls.feed
        self.assembler = PhraseAssembler(config.brain)
        self._ignored = parse_word_list(config.show.ignore_phrases)
        self._cue_in_phrase = False  # the phrase being spoken fired a cue: it does not go to the brain
        self._queue: queue.SimpleQueue[SpeechEvents | int | object] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._pending = 0  # batches put and not yet handled
        self._thread = threading.Thread(target=self._run, name="phrases")

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def put(self, events: SpeechEvents) -> None:
        """One block's events (the speech stage's sink): queued, never waited on."""
        self._enqueue(events)

    def end_of_input(self, frames_in: int) -> None:
        """The input ended: a phrase still open closes (a model without pause detection never closes one)."""
        self._enqueue(frames_in)

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until everything put so far was handled (True), or `timeout` (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def stop(self) -> None:
        """Handle what is queued, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(JOIN_SECONDS)

    def _enqueue(self, item: SpeechEvents | int) -> None:
        with self._cond:
            self._pending += 1
        self._queue.put(item)

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            try:
                if isinstance(item, int):
                    if self.assembler.words:
                        self._events((PhraseEnd(item, item * FRAME_SECONDS, 1.0, "end"),))
                else:
                    self._events(item)  # type: ignore[arg-type]
            except Exception:  # top of the gate's loop: the show goes on
                log.exception("handling the speech engine's events failed")
            finally:
                with self._cond:
                    self._pending -= 1
                    self._cond.notify_all()

    def _events(self, events: SpeechEvents) -> None:
        for event in events:
            self.feed.post(event)
            if not isinstance(event, Status):  # a status is logged as it is posted
                self.feed.log(event)
            if isinstance(event, (Word, PhraseEnd)):
                fire = self.controls.cues.hear(event)
                if fire is not None:
                    self._cue_in_phrase = True
                    self.controls.apply(fire)
                phrase = self.assembler.step(event)
                if phrase is not None:
                    self._spoken(phrase)

    def _spoken(self, phrase: Phrase) -> None:
        """A spoken phrase: noise, fillers and a cue's trigger words stop here; the rest goes to the brain."""
        why = "it fired a cue" if self._cue_in_phrase else phrase_problem(
            phrase.text, self._ignored, self.config.show.min_phrase_words)
        self._cue_in_phrase = False
        if why is not None:
            dropped = PhraseDropped(phrase.text, why)
            self.feed.post(dropped)
            self.feed.log(dropped)
            return
        self.controls.phrase(phrase)
