"""Brain without a real model: phrase assembly, word lists, fallback builder, the Brain stage and its thread."""

from __future__ import annotations

import dataclasses
import json
import queue
import threading
import time
from collections import deque
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicevibe.brain.assets import AssetError, load_assets
from voicevibe.brain.core import Brain
from voicevibe.brain.fallback import (
    CLIP_USABLE_TOKENS,
    clip_token_estimate,
    fallback_prompt,
    finish_prompt,
    repair_french,
)
from voicevibe.brain.loading import download_brain_model
from voicevibe.brain.prompting import Abandoned, LoadedModel, PromptRequest, SummaryRequest
from voicevibe.brain.summary import KEYWORDS_KEPT, NEW_SPEECH_CHARS, SessionDigest
from voicevibe.brain.worker import BrainThread
from voicevibe.cli import main
from voicevibe.config import BrainConfig, ConfigError
from voicevibe.events import (
    ImagePrompt,
    MakeSummary,
    PauseBrain,
    Phrase,
    PhraseEnd,
    Status,
    Summary,
    Word,
    to_json_dict,
)
from voicevibe.hub import ModelError
from voicevibe.speech.phrases import PhraseAssembler
from voicevibe.workers.messages import BrainAnswer, BrainConfigure, BrainSummary, BrainTook, WorkerFailed, WorkerReady

ASSETS = load_assets()
CINEMATIC = ASSETS.style("cinematic")


class ScriptedModel:
    """A fake PromptModel: answers are enqueued; each request is recorded in `history`."""

    name = "scripted"

    def __init__(self) -> None:
        self.answers: deque[str | Exception | Callable[[Callable[[], str]], str]] = deque()
        self.history: list[PromptRequest | SummaryRequest] = []

    def enqueue(self, *answers: str | Exception | Callable[[Callable[[], str]], str]) -> ScriptedModel:
        self.answers.extend(answers)
        return self

    def generate(self, request: PromptRequest, should_stop: Callable[[], str]) -> str:
        self.history.append(request)
        answer = self.answers.popleft()
        if isinstance(answer, Exception):
            raise answer
        return answer(should_stop) if callable(answer) else answer

    def summarize(self, request: SummaryRequest, should_stop: Callable[[], str]) -> str:
        return self.generate(request, should_stop)  # type: ignore[arg-type]


def wait_for_stop(started: threading.Event | None = None, cap: float = 20.0) -> Callable[[Callable[[], str]], str]:
    """An answer that 'generates' until the brain says stop (like a slow model), then obeys it."""
    def answer(should_stop: Callable[[], str]) -> str:
        if started is not None:
            started.set()
        end = time.monotonic() + cap
        while time.monotonic() < end:
            reason = should_stop()
            if reason:
                raise Abandoned(reason)
            time.sleep(0.005)
        return '{"prompt": "never stopped"}'
    return answer


def unstamped(phrase: Phrase | None) -> Phrase | None:
    """The phrase without its monotonic close time (which the assembler stamps)."""
    return None if phrase is None else dataclasses.replace(phrase, closed_at=0.0)


def words(text: str, start: float = 0.0) -> list[Word]:
    return [Word(" " + w, 100 + i, i, start + 0.3 * i) for i, w in enumerate(text.split())]


# ---- phrase assembly ------------------------------------------------------------------------

def test_assembler_closes_phrases_at_pauses_and_keeps_short_ones_for_the_next():
    asm = PhraseAssembler(BrainConfig(phrase_min_chars=15))
    out = [asm.step(e) for e in [*words("oui alors"), PhraseEnd(1, 0.5, 0.9)]]
    assert out == [None, None, None]  # 9 characters: too short, it opens the next phrase
    out = [asm.step(e) for e in [*words("la mer", 1.0), PhraseEnd(3, 2.0, 0.9)]]
    assert unstamped(out[-1]) == Phrase("oui alors la mer", 0.0, 1.3, "vad")
    assert asm.step(PhraseEnd(4, 3.0, 1.0, "end")) is None  # nothing pending


def test_assembler_closes_at_a_full_stop_and_at_the_longest_window():
    asm = PhraseAssembler(BrainConfig(phrase_min_chars=5, phrase_max_seconds=2.0))
    pieces = [Word(" The", 1, 0, 0.0), Word(" sun", 2, 1, 0.1), Word("flow", 3, 2, 0.2), Word("ers.", 4, 3, 0.3)]
    assert unstamped([asm.step(p) for p in pieces][-1]) == Phrase("The sunflowers.", 0.0, 0.3, "punctuation")
    out = [asm.step(w) for w in words("on and on and on and on and on")]  # a word every 0.3 s
    assert out[:7] == [None] * 7 and unstamped(out[7]) == Phrase("on and on and on and on and", 0.0, 2.1, "length")


def test_assembler_closes_a_short_phrase_at_the_end_of_input():
    asm = PhraseAssembler(BrainConfig(phrase_min_chars=50))
    asm.step(Word(" fin", 1, 0, 2.0))
    assert unstamped(asm.step(PhraseEnd(1, 2.5, 1.0, "end"))) == Phrase("fin", 2.0, 2.0, "end")


def test_phrases_and_prompts_carry_monotonic_latency_stamps():
    before = time.monotonic()
    asm = PhraseAssembler(BrainConfig())
    phrase = [asm.step(e) for e in [*words("un bateau sur la mer"), PhraseEnd(5, 2.0, 0.9)]][-1]
    after_close = time.monotonic()
    assert before <= phrase.closed_at <= after_close
    for model in (ScriptedModel().enqueue(answer("a boat at sea")), None):  # the model path and the fallback
        result = brain_with(model).step(phrase)
        assert result.phrase_closed_at == phrase.closed_at
        assert after_close <= result.brain_start <= result.brain_end <= time.monotonic()
    untimed = brain_with(None).step(Phrase("typed without a stamp", 0, 1))
    assert untimed.phrase_closed_at == 0.0 and untimed.brain_start > 0.0


# ---- word lists and the fallback builder ----------------------------------------------------

def test_assets_load_and_know_french_from_english():
    assert {"cinematic", "oil", "watercolour"} <= set(ASSETS.styles)
    assert len(ASSETS.lexicon) > 250 and len(ASSETS.examples) >= 4
    assert ASSETS.translate("Forêts") == "forest" and ASSETS.translate("ŒIL") == "eye"
    assert ASSETS.french_words("a wolf dans la forêt under the moon") == ["dans", "la", "forêt"]
    assert ASSETS.french_words("a calm sea, rose garden, a train at dawn") == []
    with pytest.raises(AssetError, match="known styles: cinematic"):
        ASSETS.style("baroque")


@pytest.mark.parametrize("text, hits", [
    ("a NUDE figure", ["NUDE"]), ("des femmes nues", ["nues"]), ("porn sites", ["porn"]),
    ("a calm sea at night", []), ("naked-eye stars", ["naked-eye"]), ("snow, bones", []),
])
def test_blocklist_matches_whole_words_any_case_or_accent(text, hits):
    assert ASSETS.blocked(text) == hits


def test_fallback_translates_french_and_keeps_the_prompt_shape():
    prompt = fallback_prompt("les enfants dansent sous la pluie rouge", CINEMATIC, ASSETS, vibe="nuit bleue")
    assert prompt == "cinematic film still, children dancing rain red, night blue, dramatic lighting, rich colour"
    assert ASSETS.french_words(prompt) == []


def test_fallback_keeps_the_picture_when_nothing_visual_was_said():
    assert fallback_prompt("euh bon ben voilà", CINEMATIC, ASSETS, previous="oil painting, a red boat") \
        == "oil painting, a red boat"
    assert fallback_prompt("euh", CINEMATIC, ASSETS) == "cinematic film still, abstract flowing shapes, " \
                                                        "dramatic lighting, rich colour"


def test_fallback_drops_blocklisted_words():
    prompt = fallback_prompt("une femme nue dans la mer", CINEMATIC, ASSETS)
    assert ASSETS.blocked(prompt) == [] and "woman" in prompt and "sea" in prompt


def test_finish_prompt_tidies_and_fits_clip():
    assert finish_prompt(' "(sunset:1.4), sunset, [red] sky,, {x}" ', 40) == "sunset, red sky, x"
    assert finish_prompt("a beach, no people, without clouds, warm", 40) == "a beach, warm"
    long = ", ".join(f"extraordinarily{i} luminous" for i in range(40))
    fitted = finish_prompt(long, 60)
    assert clip_token_estimate(fitted) <= CLIP_USABLE_TOKENS and len(fitted.split()) < 60
    assert long.startswith(fitted)
    assert len(finish_prompt(" ".join(["sea"] * 100), 12).split()) == 12


def test_clip_estimate_is_not_below_plain_word_counts():
    # CLIP gives common lower-case words one token each, punctuation one each.
    assert clip_token_estimate("oil painting, a calm sea at night") == 9  # CLIP: 8
    assert clip_token_estimate("cinematic") == 2  # conservative: 1 real token
    assert clip_token_estimate("été") >= 3


def test_english_words_that_look_french_without_accents_stay():
    assert ASSETS.translate("scene") is None and ASSETS.translate("scènes") == "stage"
    assert repair_french("a scene on the stage", ASSETS) == "a scene on the stage"


def test_repair_french_swaps_lexicon_words_and_drops_function_words():
    assert repair_french("a boat sur la mer at dawn", ASSETS) == "a boat sea at dawn"


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=0, max_size=400))
def test_fallback_prompt_is_always_clip_sized_clean_and_single_line(text):
    prompt = fallback_prompt(text, CINEMATIC, ASSETS, max_words=40)
    assert prompt.startswith("cinematic film still")
    assert clip_token_estimate(prompt) <= CLIP_USABLE_TOKENS and len(prompt.split()) <= 40
    assert not any(ord(c) < 32 for c in prompt) and ASSETS.blocked(prompt) == []


# ---- the Brain stage with a scripted model ---------------------------------------------------

def brain_with(model: ScriptedModel | None, **config) -> Brain:
    return Brain(model, BrainConfig(**config), ASSETS)


def answer(prompt: str, mood: str = "calm") -> str:
    return json.dumps({"style": "cinematic", "prompt": prompt, "mood": mood})


def test_brain_uses_the_model_and_feeds_back_history_previous_prompt_and_vibe():
    model = ScriptedModel().enqueue(answer("an old book of tales"),
                                    answer("cinematic film still, a red boat on a calm sea, dawn"),
                                    answer("a red boat sinking, storm clouds", "dark"))
    brain = brain_with(model, vibe="dreamy", history_seconds=10)
    brain.step(Phrase("il était une fois", 0, 2))  # out of the history window of the last phrase
    first = brain.step(Phrase("un bateau rouge", 9, 10))
    assert first.source == "model" and first.reason == "" and first.model == "scripted" and first.mood == "calm"
    assert first.style == "cinematic" and first.latency_ms > 0
    assert first.text == "cinematic film still, a red boat on a calm sea, dawn, dreamy, dramatic lighting, rich colour"
    second = brain.step(Phrase("il coule", 15, 16))
    assert model.history[2] == PromptRequest("il coule", CINEMATIC, ("un bateau rouge",), first.text, "dreamy",
                                             "coule")  # the French phrase glossed (words the lexicon lacks as said)
    assert second.text.startswith("cinematic film still, a red boat sinking")  # the style is always first
    brain.reset()
    model.enqueue(answer("a lighthouse"))
    brain.step(Phrase("a lighthouse", 17, 18))
    assert model.history[3] == PromptRequest("a lighthouse", CINEMATIC, (), "", "")


@pytest.mark.parametrize("raw, reason", [
    ("not json at all", "not JSON"),
    ('{"scene": "a boat"}', 'without a "prompt"'),
    ('{"prompt": ""}', "empty prompt"),
    ('{"prompt": "a boat"', "not JSON"),  # cut off at max_tokens
    (answer("a naked man on a beach"), "blocklisted word 'naked'"),
    (answer("la vieille femme qui marche"), "French left untranslated (la, vieille, femme)"),
    (answer("cinematic film still, a calm sea at night, silver moonlight on gentle waves, deep blue"),
     "copied a few-shot example"),
    (answer("cinematic film still"), "nothing but the style"),
    (answer("em a /em em l /em em l /em em l /em em l /em"), "repetitive output"),
])
def test_every_bad_answer_becomes_a_fallback_prompt_with_its_reason(raw, reason):
    model = ScriptedModel().enqueue(raw)
    result = brain_with(model).step(Phrase("une vieille femme marche sur la plage", 0, 1))
    assert result.source == "fallback" and reason in result.reason and result.mood == ""
    assert result.text == "cinematic film still, old woman walking beach, dramatic lighting, rich colour"


def test_a_long_model_prompt_is_cut_so_the_vibe_and_light_still_fit():
    long = " ".join(dict.fromkeys(w for v in ASSETS.lexicon.values() for w in v.split()))  # 250+ distinct words
    result = brain_with(ScriptedModel().enqueue(answer(long)), vibe="underwater").step(Phrase("x y", 0, 1))
    assert result.source == "model" and result.text.endswith(", underwater, dramatic lighting, rich colour")
    assert clip_token_estimate(result.text) <= CLIP_USABLE_TOKENS and len(result.text.split()) <= 40


def test_control_characters_from_the_model_never_reach_the_prompt():
    result = brain_with(ScriptedModel().enqueue(answer("a boat\u0000 at\u001b dawn"))).step(Phrase("a boat", 0, 1))
    assert result.source == "model" and result.text.isprintable() and "a boat at dawn" in result.text


def test_french_words_in_the_answer_are_repaired_when_the_lexicon_knows_them():
    model = ScriptedModel().enqueue(answer("a ship on the mer at night, my mother's lamp"))
    result = brain_with(model).step(Phrase("un navire sur la mer", 0, 1))
    assert result.source == "model" and "a ship on the sea at night, my mother's lamp" in result.text


def test_a_slow_model_is_abandoned_at_the_time_budget():
    model = ScriptedModel().enqueue(wait_for_stop())
    result = brain_with(model, time_budget_seconds=0.2).step(Phrase("la lune sur le lac", 0, 1))
    assert result.source == "fallback" and result.reason == "over the 0.2 s time budget"
    assert result.text.startswith("cinematic film still, moon lake")


def test_a_phrase_overtaken_by_a_newer_one_is_never_rendered():
    model = ScriptedModel().enqueue(wait_for_stop())
    assert brain_with(model).step(Phrase("old news", 0, 1), newer_waiting=lambda: True) is None
    assert len(model.history) == 1


def test_a_phrase_made_only_of_blocked_words_makes_no_prompt():
    model = ScriptedModel()
    brain = brain_with(model)
    assert brain.step(Phrase("sexe nu", 0, 1)) is None and model.history == []
    model.enqueue(answer("a quiet beach"))
    assert brain.step(Phrase("une plage nue", 1, 2)).source == "model"  # a real word is left: a prompt


def test_an_extra_blocklist_file_is_added_to_the_default(tmp_path):
    extra = tmp_path / "venue.txt"
    extra.write_text("# venue words\nclown\n", encoding="utf-8")
    assets = load_assets(str(extra))
    assert assets.blocked("a sad clown, nude") == ["clown", "nude"]
    with pytest.raises(AssetError, match="cannot read the blocklist file"):
        load_assets(str(tmp_path / "missing.txt"))


def test_pause_keeps_memory_but_makes_no_prompt_and_no_model_means_fallback():
    brain = brain_with(None)
    brain.paused = True
    assert brain.step(Phrase("la forêt", 0, 1)) is None
    brain.paused = False
    result = brain.step(Phrase("la nuit", 1, 2))
    assert [p.text for p in brain.history] == ["la forêt", "la nuit"]
    assert result.source == "fallback" and result.reason == "no model" and "night" in result.text


def test_style_and_config_are_validated():
    with pytest.raises(AssetError, match="unknown style 'baroque'"):
        brain_with(None, style="baroque")
    with pytest.raises(ConfigError, match="time_budget_seconds = 0.0: allowed is a number from 0.2 to 60.0"):
        BrainConfig(time_budget_seconds=0.0)
    with pytest.raises(ConfigError, match="prompt_interval_seconds = 1.0: allowed is 0 .every phrase. or"):
        BrainConfig(prompt_interval_seconds=1.0)
    with pytest.raises(ConfigError, match="history_seconds = 5.0: allowed is a number from 10.0 to 300.0"):
        BrainConfig(history_seconds=5.0)
    assert {"film-noir", "watercolour", "synthwave", "glitch", "ukiyo-e"} <= set(ASSETS.styles)


# ---- the brain thread ------------------------------------------------------------------------

def next_of(events: queue.Queue, kind: type, timeout: float = 30.0, where: Callable = lambda e: True):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        item = events.get(timeout=max(end - time.monotonic(), 0.01))
        if isinstance(item, kind) and where(item):
            return item
    raise AssertionError(f"no {kind.__name__} event")


def drain(events: queue.Queue) -> list:
    out = []
    while not events.empty():
        out.append(events.get_nowait())
    return out


def run_worker(loader, config: BrainConfig | None = None) -> tuple[BrainThread, queue.Queue]:
    events: queue.Queue = queue.Queue()
    worker = BrainThread(config or BrainConfig(), events.put, loader)
    worker.start()
    return worker, events


class Feeder:
    """Numbers phrases as the main process does, for a BrainThread under test."""

    def __init__(self, worker: BrainThread) -> None:
        self.worker, self.seq = worker, 0

    def __call__(self, phrase: Phrase) -> int:
        self.seq += 1
        self.worker.put(self.seq, phrase)
        return self.seq


def prompt_of(events: queue.Queue) -> ImagePrompt:
    """The next answer that carries a prompt."""
    return next_of(events, BrainAnswer, where=lambda a: a.prompt is not None).prompt


def test_worker_warms_up_turns_phrases_into_prompts_and_stops_cleanly():
    model = ScriptedModel().enqueue(answer("warm"), answer("children dancing in the rain"))
    worker, events = run_worker(lambda c, a: LoadedModel(model, "using a test model"))
    Feeder(worker)(Phrase("les enfants dansent sous la pluie", 0, 2))
    assert next_of(events, Status).message == "using a test model"
    assert next_of(events, WorkerReady).detail == "brain model: scripted"
    assert next_of(events, BrainTook).seq == 1
    answered = next_of(events, BrainAnswer)
    assert answered.seq == 1 and answered.prompt.phrase == "les enfants dansent sous la pluie"
    assert answered.prompt.source == "model"
    worker.stop()
    assert not worker.is_alive() and model.history[0].phrase == "warm up"


def test_worker_merges_phrases_that_wait_into_the_newest():
    gate = threading.Event()
    model = ScriptedModel().enqueue(answer("warm"), answer("a third scene"))

    def slow_loader(config, assets):
        gate.wait(30)
        return LoadedModel(model)

    worker, events = run_worker(slow_loader)
    feed = Feeder(worker)
    for i, text in enumerate(("first phrase", "second phrase", "third phrase")):
        feed(Phrase(text, i, i + 0.5, closed_at=i + 1.0))
    gate.set()
    answered = next_of(events, BrainAnswer)
    worker.stop()
    assert answered.seq == 3  # one answer for all three: the main process resolves them all
    assert answered.prompt.phrase == "first phrase second phrase third phrase" and worker.merged == 2
    assert answered.prompt.phrase_closed_at == 3.0  # the newest phrase's close: the queue time is honest
    assert model.history[1] == PromptRequest("first phrase second phrase third phrase", CINEMATIC)


def test_worker_abandons_a_generation_when_a_newer_phrase_arrives():
    started = threading.Event()
    model = ScriptedModel().enqueue(answer("warm"), wait_for_stop(started), answer("the newer scene"))
    worker, events = run_worker(lambda c, a: LoadedModel(model), BrainConfig(time_budget_seconds=60))
    feed = Feeder(worker)
    feed(Phrase("stale phrase", 0, 1))
    assert started.wait(30)
    feed(Phrase("newer phrase", 1, 2))
    stale = next_of(events, BrainAnswer)
    prompt = prompt_of(events)
    worker.stop()
    assert stale.seq == 1 and stale.prompt is None  # superseded: never rendered
    assert prompt.phrase == "newer phrase" and "the newer scene" in prompt.text
    assert [r.phrase for r in model.history] == ["warm up", "stale phrase", "newer phrase"]
    assert model.history[2].history == ("stale phrase",)  # the stale phrase is still context


def test_worker_that_cannot_load_its_model_says_why_and_ends():
    def broken(config, assets):
        raise ModelError("model.gguf: llama.cpp cannot load this GGUF (bad magic)")

    worker, events = run_worker(broken)
    failed = next_of(events, WorkerFailed)
    worker.join(10)
    assert "bad magic" in failed.message and worker.failed and not worker.is_alive()


def test_worker_pause_resume_style_and_a_crash_in_one_phrase():
    # A bug (not a model error, which gets a fallback prompt): the worker reports it and keeps going.
    model = ScriptedModel().enqueue(answer("warm"), KeyError("a bug"), answer("a quiet harbour"))
    worker, events = run_worker(lambda c, a: LoadedModel(model))
    feed = Feeder(worker)
    worker.command(PauseBrain(True))
    feed(Phrase("paused phrase", 0, 1))
    assert next_of(events, BrainAnswer).prompt is None  # paused: remembered, no prompt
    worker.command(PauseBrain(False))
    worker.command(BrainConfigure(BrainConfig(style="baroque")))  # settings travel whole; an unknown style...
    feed(Phrase("crashing phrase", 1, 2))
    refused = next_of(events, Status, where=lambda e: e.level == "warning")
    error = next_of(events, Status, where=lambda e: e.level == "error")
    assert "BrainConfigure refused: unknown style" in refused.message  # ...is refused, the old settings stay
    assert "KeyError: 'a bug'" in error.message  # the thread keeps going
    worker.command(BrainConfigure(BrainConfig(style="synthwave")))
    feed(Phrase("le port", 2, 3))
    prompt = prompt_of(events)
    worker.stop()
    assert prompt.phrase == "le port" and prompt.style == "synthwave"
    assert prompt.text.startswith("synthwave digital art, a quiet harbour")
    assert "paused phrase" not in [r.phrase for r in model.history]


def test_worker_rate_limit_merges_phrases_between_prompts():
    model = ScriptedModel().enqueue(answer("warm"), answer("one"), answer("two"))
    worker, events = run_worker(lambda c, a: LoadedModel(model), BrainConfig(prompt_interval_seconds=2.0))
    feed = Feeder(worker)
    feed(Phrase("first", 0, 1))
    assert prompt_of(events).phrase == "first"
    feed(Phrase("second", 1, 2))  # inside the interval: waits, and merges with what follows
    feed(Phrase("third", 2, 3))
    prompt = prompt_of(events)
    worker.stop()
    assert prompt.phrase == "second third" and len(model.history) == 3


# ---- the slow (summary) brain ------------------------------------------------------------------

def summary_answer(summary: str, prompt: str) -> str:
    return json.dumps({"summary": summary, "prompt": prompt})


def test_summary_from_the_model_is_rolling_and_needs_something_new():
    model = ScriptedModel().enqueue(answer("a boat"), answer("a storm"),
                                    summary_answer("A boat sails into a storm.",
                                                   "cinematic film still, a boat in a storm"),
                                    answer("an island"),
                                    summary_answer("The boat reaches an island.", "a boat on an island shore"))
    brain = brain_with(model, vibe="dreamy")
    brain.step(Phrase("un bateau part", 0, 1))
    brain.step(Phrase("la tempête arrive", 1, 2))
    first = brain.summarize()
    assert model.history[2] == SummaryRequest("", "un bateau part / la tempête arrive", CINEMATIC, "dreamy",
                                              "boat, part, storm, arrive")
    assert isinstance(first, Summary) and first.source == "model" and first.model == "scripted"
    assert first.text == "A boat sails into a storm."
    assert first.image_prompt == "cinematic film still, a boat in a storm, dreamy, dramatic lighting, rich colour"
    assert brain.summarize() is None and len(model.history) == 3  # nothing new said: no summary, no model call
    brain.step(Phrase("une île au loin", 2, 3))
    second = brain.summarize()
    assert model.history[4] == SummaryRequest("A boat sails into a storm.", "une île au loin", CINEMATIC, "dreamy",
                                              "island, loin")
    assert second.image_prompt.startswith("cinematic film still, a boat on an island shore")


@pytest.mark.parametrize("raw, reason", [
    ("{not json", "not JSON"),
    (summary_answer("A naked man dances.", "a man dancing"), "blocklisted word 'naked' in the summary"),
    (summary_answer("The sea, sea.", "a sea"), "summary too short"),
    (summary_answer("A calm sea under the moon.", "la vieille femme qui marche"), "French left untranslated"),
    (Abandoned("timeout"), "over the 30 s summary budget"),
])
def test_a_bad_or_slow_summary_falls_back_to_the_session_keywords(raw, reason):
    model = ScriptedModel().enqueue(answer("a"), answer("b"), answer("c"), raw)
    brain = brain_with(model, style="synthwave")
    for i, text in enumerate(("la mer la nuit", "la mer et la lune", "un bateau sur la mer")):
        brain.step(Phrase(text, i, i + 1))
    result = brain.summarize()
    assert result.source == "fallback" and reason in result.reason
    assert result.text == "So far: sea, night, moon, boat."  # the most frequent first
    assert result.image_prompt.startswith("synthwave digital art, sea night moon boat")
    assert ASSETS.blocked(result.text + result.image_prompt) == []
    assert brain.digest.summary == result.text and brain.digest.new_speech == ""


def test_summary_interrupted_by_a_phrase_keeps_the_digest_for_later():
    model = ScriptedModel().enqueue(answer("a"), wait_for_stop())
    brain = brain_with(model)
    brain.step(Phrase("le vent se lève", 0, 1))
    assert brain.summarize(interrupted=lambda: True) is None
    assert brain.digest.new_speech == "le vent se lève" and brain.digest.summary == ""


def test_pause_means_no_summary_and_reset_forgets_the_session():
    brain = brain_with(None)
    brain.step(Phrase("la forêt la nuit", 0, 1))
    brain.paused = True
    assert brain.summarize() is None
    brain.paused = False
    assert brain.summarize().reason == "no model"
    brain.step(Phrase("un loup", 1, 2))
    brain.reset()
    assert brain.digest.summary == brain.digest.new_speech == "" and not brain.digest.keywords
    assert brain.summarize() is None


def test_session_digest_stays_bounded_over_a_long_show():
    digest = SessionDigest()
    for i in range(3000):
        name = "".join(chr(ord("a") + int(d)) for d in str(i))  # a new word every phrase: 3000 distinct words
        digest.add(f"the sea and the zz{name} tonight", ASSETS)
    assert len(digest.new_speech) <= NEW_SPEECH_CHARS and digest.new_speech.endswith("the sea and the zzcjjj tonight")
    assert len(digest.keywords) <= KEYWORDS_KEPT
    assert [w for w, _ in digest.keywords.most_common(2)] == ["sea", "tonight"]


def test_summary_config_is_validated():
    with pytest.raises(ConfigError, match="summary_seconds = 5.0: allowed is a number from 20.0 to 600.0"):
        BrainConfig(summary_seconds=5.0)
    assert BrainConfig().summary and BrainConfig().summary_seconds == 60.0


def test_worker_makes_summaries_on_its_interval_only_when_something_new_was_said():
    model = ScriptedModel().enqueue(answer("warm"), answer("a lighthouse"),
                                    summary_answer("A lighthouse stands in the night.", "a lighthouse at night"))
    worker, events = run_worker(lambda c, a: LoadedModel(model), BrainConfig(summary_seconds=20))
    Feeder(worker)(Phrase("le phare dans la nuit", 0, 1))
    assert prompt_of(events).phrase == "le phare dans la nuit"
    worker.command(MakeSummary())  # as if the interval had passed
    summary = next_of(events, BrainSummary).summary
    worker.command(MakeSummary())
    time.sleep(0.6)  # asked again with nothing new said: no summary, no model call
    worker.stop()
    assert summary.text == "A lighthouse stands in the night." and summary.source == "model"
    assert len(model.history) == 3 and not any(isinstance(e, BrainSummary) for e in drain(events))


def test_worker_summary_gives_way_to_a_phrase_and_is_retried_after_it():
    started = threading.Event()
    model = ScriptedModel().enqueue(answer("warm"), answer("a first scene"), wait_for_stop(started),
                                    answer("the urgent scene"),
                                    summary_answer("Two scenes were told on stage.", "two scenes"))
    worker, events = run_worker(lambda c, a: LoadedModel(model))
    feed = Feeder(worker)
    feed(Phrase("first phrase", 0, 1))
    prompt_of(events)
    worker.command(MakeSummary())  # the operator asks for one now: it starts
    assert started.wait(30)
    feed(Phrase("urgent phrase", 1, 2))
    prompt = prompt_of(events)
    summary = next_of(events, BrainSummary).summary
    worker.stop()
    assert prompt.phrase == "urgent phrase" and summary.text == "Two scenes were told on stage."
    assert [type(r).__name__ for r in model.history] == ["PromptRequest"] * 2 + ["SummaryRequest", "PromptRequest",
                                                                                 "SummaryRequest"]
    assert model.history[4].new_speech == "first phrase / urgent phrase"


def test_worker_makes_no_summary_while_paused():
    model = ScriptedModel().enqueue(answer("warm"), summary_answer("Nothing but rain tonight.", "rain at night"))
    worker, events = run_worker(lambda c, a: LoadedModel(model))
    worker.command(PauseBrain(True))
    Feeder(worker)(Phrase("il pleut ce soir", 0, 1))  # paused: remembered, no prompt
    worker.command(MakeSummary())
    next_of(events, BrainAnswer)
    time.sleep(0.2)
    assert len(model.history) == 1  # paused: no summary either
    worker.command(PauseBrain(False))
    worker.command(MakeSummary())
    summary = next_of(events, BrainSummary).summary
    worker.stop()
    assert summary.text == "Nothing but rain tonight." and summary.image_prompt.startswith("cinematic film still, rain")


# ---- events and CLI ----------------------------------------------------------------------------

def test_image_prompt_serializes_with_its_type():
    d = to_json_dict(ImagePrompt("a boat", "un bateau", "oil", "", "fallback", "timeout", 500.0, "m"))
    assert d == {"type": "image_prompt", "text": "a boat", "phrase": "un bateau", "style": "oil", "mood": "",
                 "source": "fallback", "reason": "timeout", "latency_ms": 500.0, "model": "m",
                 "phrase_closed_at": 0.0, "brain_start": 0.0, "brain_end": 0.0}


def test_cli_prompt_without_llm_prints_json_events(capsys):
    assert main(["prompt", "--no-llm", "--json", "--style", "oil", "--vibe", "nuit", "la mer calme"]) == 0
    event = json.loads(capsys.readouterr().out.strip())
    assert event["type"] == "image_prompt" and event["source"] == "fallback" and event["reason"] == "--no-llm"
    assert event["text"] == "oil painting, sea calm, night, warm light, visible brush strokes"


def test_cli_prompt_keeps_the_previous_picture_when_nothing_visual_is_said(capsys):
    assert main(["prompt", "--no-llm", "--previous", "ink drawing, a fox", "euh bon ben voilà"]) == 0
    assert capsys.readouterr().out == "ink drawing, a fox\n"


def test_cli_prompt_rejects_an_unknown_style(capsys):
    assert main(["prompt", "--no-llm", "--style", "baroque", "x"]) == 2
    assert "unknown style 'baroque'" in capsys.readouterr().err


# ---- models download -------------------------------------------------------------------------

def fake_hub(monkeypatch, tmp_path, *, online: bool) -> list[tuple[str, str, bool]]:
    """Replace the hub download: an empty cache, and a 'network' that works or not."""
    import huggingface_hub
    from huggingface_hub.utils import LocalEntryNotFoundError

    calls: list[tuple[str, str, bool]] = []

    def download(repo: str, filename: str, local_files_only: bool = False) -> str:
        calls.append((repo, filename, local_files_only))
        if local_files_only or not online:
            raise LocalEntryNotFoundError("offline and not cached")
        path = tmp_path / filename
        path.write_bytes(b"GGUF")
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    return calls


def test_download_brain_model_fetches_the_configured_gguf_into_the_cache(monkeypatch, tmp_path):
    calls = fake_hub(monkeypatch, tmp_path, online=True)
    path = download_brain_model(BrainConfig(model="someone/tiny-GGUF", model_file="tiny-Q4_K_M.gguf"))
    assert path == tmp_path / "tiny-Q4_K_M.gguf"
    assert calls == [("someone/tiny-GGUF", "tiny-Q4_K_M.gguf", True), ("someone/tiny-GGUF", "tiny-Q4_K_M.gguf", False)]
    local = tmp_path / "mine.gguf"
    local.write_bytes(b"GGUF")
    assert download_brain_model(BrainConfig(model=str(local))) == local and len(calls) == 2


def test_download_brain_model_offline_says_the_bundled_model_will_be_used(monkeypatch, tmp_path):
    fake_hub(monkeypatch, tmp_path, online=False)
    with pytest.raises(ModelError, match="could not be fetched; the app will use the bundled Gemma 3 270M"):
        download_brain_model(BrainConfig())
    with pytest.raises(ModelError, match="no such .gguf file, and not a Hugging Face repo id"):
        download_brain_model(BrainConfig(model=str(tmp_path / "missing.gguf")))


def test_cli_models_download_fetches_the_brain_model_too(monkeypatch, tmp_path, capsys):
    import voicevibe.cli as cli
    from voicevibe.hub import SttFiles

    fake_hub(monkeypatch, tmp_path, online=False)
    stt = SttFiles("kyutai/x", {}, tmp_path / "lm", tmp_path / "mimi", tmp_path / "tok")
    monkeypatch.setattr(cli, "locate_stt", lambda model, allow_download: stt)
    assert main(["models", "download"]) == 0  # offline brain: not fatal, the STT files are there
    out, err = capsys.readouterr()
    assert "[brain] brain model unsloth/gemma-3-1b-it-GGUF/gemma-3-1b-it-Q4_K_M.gguf could not be fetched" in err
    assert out.splitlines() == [f"ok  {tmp_path / n}" for n in ("lm", "mimi", "tok")]
    fake_hub(monkeypatch, tmp_path, online=True)
    assert main(["models", "download"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"ok  {tmp_path / 'gemma-3-1b-it-Q4_K_M.gguf'}"


def test_a_model_that_raises_gets_fallback_prompts_and_summaries():
    class Explodes:
        name = "explodes"

        def generate(self, request, should_stop):
            raise RuntimeError("llama_decode returned -3")

        def summarize(self, request, should_stop):
            raise RuntimeError("llama_decode returned -3")

    brain = Brain(Explodes(), BrainConfig(), load_assets(""))
    brain.warm_up()  # logged, not raised
    prompt = brain.step(Phrase("a lighthouse in a storm", 0.0, 2.0))
    assert prompt.source == "fallback" and "lighthouse" in prompt.text
    assert prompt.reason == "model error (RuntimeError: llama_decode returned -3)"
    summary = brain.summarize()
    assert summary is not None and summary.source == "fallback" and "RuntimeError" in summary.reason
