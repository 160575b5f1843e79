"""Prompts that show what was said: French glossed in English for the model, the visual words a model
dropped put back, the variety rule, the server brain's plain-text answers, and `prompt --json` when the
server check fails. The model here is scripted; tests/test_brain_llm.py runs the real 270M."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources

import pytest

from support.llamaserver import free_port
from voicevibe.brain.assets import load_assets, words_of
from voicevibe.brain.core import Brain
from voicevibe.brain.fallback import restore_said, said_words
from voicevibe.brain.prompting import PromptRequest, SummaryRequest, completion_head, completion_text, summary_text
from voicevibe.brain.schema import text_answer
from voicevibe.brain.server import ServerPromptModel
from voicevibe.cli import main
from voicevibe.config import BrainConfig
from voicevibe.events import ImagePrompt, Phrase, Summary

ASSETS = load_assets()
CINEMATIC = ASSETS.style("cinematic")
LIGHT = ", " + CINEMATIC.light
FOX = "un renard rouge dort sous le pont gelé"


class Scripted:
    """A PromptModel answering the given scenes in turn (the last one again and again), keeping the requests."""

    name = "scripted"

    def __init__(self, *scenes: str) -> None:
        self.scenes, self.requests = list(scenes), []  # type: ignore[var-annotated]

    def generate(self, request: PromptRequest, should_stop: Callable[[], str]) -> str:
        self.requests.append(request)
        scene = self.scenes.pop(0) if len(self.scenes) > 1 else self.scenes[0]
        return json.dumps({"style": "cinematic", "prompt": f"cinematic film still, {scene}", "mood": "calm"})

    def summarize(self, request: SummaryRequest, should_stop: Callable[[], str]) -> str:
        raise RuntimeError("no summaries here")


def prompt_for(model: Scripted, phrase: str, brain: Brain | None = None) -> ImagePrompt:
    result = (brain or Brain(model, BrainConfig(), ASSETS)).step(Phrase(phrase, 0.0, 1.0))
    assert isinstance(result, ImagePrompt) and result.source == "model", result
    return result


# ---- glossing: the 270M reads French badly, English well -------------------------------------

def test_a_french_phrase_reaches_the_model_with_its_words_in_english():
    assert ASSETS.gloss(FOX) == "fox, red, sleeping, bridge, frozen"
    assert ASSETS.gloss("a red fox sleeps under the frozen bridge") == ""  # English: nothing to gloss
    model = Scripted("a fox under a bridge")
    prompt_for(model, FOX)
    request = model.requests[-1]
    assert request.gloss == "fox, red, sleeping, bridge, frozen"
    text = completion_text(request, ASSETS.examples)
    assert text.endswith(f"Speech: {FOX}\nEnglish: fox, red, sleeping, bridge, frozen\nJSON: "
                         + completion_head(request))
    # the French few-shot examples carry the same line, so the model sees what it is for; English ones none
    assert "Speech: la mer est calme ce soir\nEnglish: sea, calm, evening\nJSON: " in text
    assert "Speech: the storm broke the old wooden boat\nJSON: " in text


def test_the_summary_brain_gets_the_new_speech_glossed_too():
    model = Scripted("a boat")
    brain = Brain(model, BrainConfig(), ASSETS)
    prompt_for(model, "la tempête arrive sur le port", brain)
    request = SummaryRequest("", brain.digest.new_speech, CINEMATIC, gloss=ASSETS.gloss(brain.digest.new_speech))
    assert request.gloss == "storm, arrive, harbour"
    assert "New speech: la tempête arrive sur le port\nEnglish: storm, arrive, harbour\nJSON: " in summary_text(request)


def test_english_plurals_are_not_taken_for_french_words():
    assert ASSETS.french_words("oranges and lemons, two roses on the table") == []
    assert ASSETS.french_words("des roses rouges") == ["des", "rouges"]
    assert prompt_for(Scripted("oranges and lemons in a market"), "oranges and lemons").text.startswith(
        "cinematic film still, oranges and lemons in a market")


def test_french_function_words_that_are_english_words_keep_their_english_sense_in_english():
    # "car", "son", "pour" are French function words ("because", "his", "for") and English words
    model_says = "a red car in the rain, a son and his father, rain starts to pour"
    result = prompt_for(Scripted(model_says), "a red car drives my son home as the rain starts to pour")
    assert result.text.startswith(f"cinematic film still, {model_says}")  # the repair drops none of them
    assert ASSETS.gloss("a red car on the road") == ""  # English: no gloss that leaves the car out
    assert ASSETS.french_words("my son drives a car, plus a van") == []
    # in a French phrase they are function words: "car" (because) is no car to put back
    assert [w for _, w in said_words("il pleut car le ciel est gris", ASSETS)] == ["sky", "grey"]
    assert ASSETS.gloss("il dort car il fait froid") == "sleeping, cold"
    assert "car" not in prompt_for(Scripted("a grey sky over the roofs"), "il pleut car le ciel est gris").text


def test_expressions_of_several_words_are_translated_whole():
    assert ASSETS.units("des feux d'artifice au coucher du soleil") == ["des", "feux d artifice", "au",
                                                                        "coucher du soleil"]
    assert ASSETS.gloss("des feux d'artifice au coucher du soleil") == "fireworks, sunset"
    assert ASSETS.gloss("une pomme de terre dans la terre") == "potato, earth"  # not an apple of earth
    assert ASSETS.gloss("deux étoiles filantes") == "two, shooting star"  # plurals of every word
    # a dropped expression goes back whole; one the model said is left alone
    phrase = "une étoile filante traverse la voie lactée"
    assert restore_said("a bright star in the night sky", phrase, ASSETS) == \
        "a bright star in the night sky, shooting star, milky way"
    assert restore_said("shooting stars over the milky way", phrase, ASSETS) == "shooting stars over the milky way"


# ---- the lexicon: the common visual words a performer says, in every form ----------------------

@pytest.mark.parametrize("phrase, gloss", [
    ("un hérisson dort sous un chêne enneigé", "hedgehog, sleeping, oak, snowy"),
    ("la sorcière rousse grimpe sur la falaise", "witch, red-haired, climbing, cliff"),
    ("des girafes traversent la savane ensoleillée", "giraffe, crossing, savanna, sunny"),
    ("un chevalier blessé porte une armure rouillée", "knight, wounded, door, armour, rusty"),
    ("les moines chantent dans la cathédrale obscure", "monk, singing, cathedral, dark"),
])
def test_the_lexicon_knows_the_common_visual_words_a_performer_says(phrase, gloss):
    assert ASSETS.gloss(phrase) == gloss


def test_the_brain_puts_back_a_common_word_the_model_dropped():
    result = prompt_for(Scripted("a small animal asleep in the rain"), "un hérisson dort sous la pluie")
    assert result.text == "cinematic film still, a small animal asleep in the rain, hedgehog" + LIGHT


def test_the_lexicon_gives_each_french_word_one_translation_and_flags_no_english_word():
    seen: dict[str, str] = {}
    text = (resources.files("voicevibe") / "assets" / "lexicon_fr_en.tsv").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            french, _, english = line.partition("\t")
            assert seen.setdefault(french, english) == english, f"{french}: {seen[french]} or {english}?"
    # French words that are also English words of another meaning stay out: they would reject an English prompt
    assert ASSETS.french_words("the main cave by the pin, a plume, a cascade, a tableau, the voyage, a coin") == []
    # no translation is blocklisted, nor a French word of the lexicon that means something else ("pain" = bread)
    english = " ".join(ASSETS.lexicon.values())
    assert ASSETS.blocked(english) == []
    assert [w for w in words_of(english) if ASSETS.lexicon.get(w, w) != w] == []
    # nor does an English word of the lexicon stand for a French function word a phrase says ("son" = "his")
    assert [w for _, w in said_words("son chapeau et sa robe", ASSETS)] == ["hat", "dress"]


# ---- repair: the phrase's visual words the model dropped go back in --------------------------

@pytest.mark.parametrize("phrase, scene, repaired", [
    (FOX, "a fox sleeping under the bridge", "a red fox sleeping under the frozen bridge"),
    ("le vieux marin chante pour la lune d'argent", "a sailor singing to the moon, gentle waves",
     "an old sailor singing to the moon, silver, gentle waves"),
    ("un soldat lit une lettre près du feu", "a soldier by the fire", "a soldier by the fire, letter"),
    ("a red fox sleeps under the frozen bridge", "a fox asleep under a bridge",
     "a red fox asleep under a frozen bridge"),
    (FOX, "a red fox asleep on a frozen bridge", "a red fox asleep on a frozen bridge"),  # all there: untouched
    ("les enfants jouent dans les feuilles", "a child in autumn leaves", "a child in autumn leaves"),  # plurals
])
def test_visual_words_the_model_dropped_are_put_back_beside_their_neighbours(phrase, scene, repaired):
    assert restore_said(scene, phrase, ASSETS) == repaired


def test_the_brain_repairs_what_the_model_dropped_and_keeps_its_style():
    result = prompt_for(Scripted("a sailor singing to the moon, moonlight on gentle waves"),
                        "le vieux marin chante pour la lune d'argent")
    assert result.text == ("cinematic film still, an old sailor singing to the moon, silver, moonlight on gentle waves"
                           + LIGHT)


# ---- variety: no closing phrase closes more than a quarter of a varied show -------------------

def test_no_closing_phrase_closes_more_than_a_quarter_of_a_varied_show():
    subjects = ["a boat on the sea", "a fox in the snow", "a tower in the fog", "a king on a horse",
                "a girl with a lamp", "a train at night", "a whale in the sky", "a church by the lake",
                "a dragon over the city", "a dancer on the stage", "a wolf in the forest", "a piano in a field"]
    model = Scripted(*(f"{s}, dark green and grey" for s in subjects))
    brain = Brain(model, BrainConfig(), ASSETS)
    prompts = [brain.step(Phrase(s, i * 40.0, i * 40.0 + 1)) for i, s in enumerate(subjects)]
    texts = [p.text for p in prompts if isinstance(p, ImagePrompt) and p.source == "model"]
    assert len(texts) == len(subjects)
    closing = [t.removesuffix(LIGHT).rsplit(", ", 1)[-1] for t in texts]
    assert closing.count("dark green and grey") <= len(texts) // 4, closing
    assert all(t.endswith(LIGHT) for t in texts)  # the preset's light closes them all: the preset says so
    assert all(s in t for s, t in zip(subjects, texts))  # only the repeated tail went
    brain.reset()  # a new show starts fresh
    assert prompt_for(model, "a boat on the sea", brain).text.removesuffix(LIGHT).endswith("dark green and grey")


# ---- the server brain: plain text, the JSON written here ----------------------------------------

def test_the_server_brain_asks_for_plain_text_and_writes_the_json_itself(standin):
    config = BrainConfig(model=standin.url, time_budget_seconds=30.0)
    brain = Brain(ServerPromptModel(config, ASSETS.examples), config, ASSETS)
    standin.stream_text(' a grey harbour at dusk, gulls", "mood": "calm')
    result = brain.step(Phrase("le port est gris", 0.0, 1.0))
    assert isinstance(result, ImagePrompt) and result.source == "model" and result.mood == "calm", result
    assert result.text == "cinematic film still, a grey harbour at dusk, gulls" + LIGHT
    path, body = standin.requests[-1]
    request = PromptRequest("le port est gris", CINEMATIC, gloss="harbour, grey")
    assert path == "/v1/completions" and body["prompt"] == completion_text(request, ASSETS.examples)
    assert body["stop"] == ["\n", '"}'] and body["max_tokens"] == config.max_tokens
    assert "response_format" not in body and "grammar" not in body and "messages" not in body
    standin.stream_text(" a lighthouse in the fog")  # no mood: the prompt is used all the same
    result = brain.step(Phrase("a lighthouse in the fog", 40.0, 41.0))
    assert isinstance(result, ImagePrompt) and result.source == "model" and result.mood == "", result
    standin.stream_text('A harbour at dusk where a lighthouse shines in the fog.", "prompt": "cinematic film '
                        'still, a lighthouse over a grey harbour')
    summary = brain.summarize()
    assert isinstance(summary, Summary) and summary.source == "model", summary
    assert summary.text == "A harbour at dusk where a lighthouse shines in the fog."
    assert standin.requests[-1][1]["prompt"].endswith('JSON: {"summary": "')


def test_a_plain_text_answer_cut_inside_the_prompt_is_no_answer():
    assert json.loads(text_answer(CINEMATIC, ' a red fox", "mood": "sly', cut=True))["mood"] == "sly"
    with pytest.raises(ValueError, match="not JSON"):
        text_answer(CINEMATIC, " a red fox sleeping under the frozen bridge at the edge of", cut=True)
    with pytest.raises(ValueError, match="empty prompt"):
        text_answer(CINEMATIC, ' ", "mood": "calm')


def test_prompt_json_answers_even_when_the_server_check_fails(capsys):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    code = main(["prompt", "--json", "--model", url, "la mer est calme"])
    out = capsys.readouterr()
    data = json.loads(out.out)
    assert code == 0 and data["source"] == "fallback", out
    assert data["reason"].startswith("brain server check failed (server reachable: brain server")
    assert url in data["reason"]
    assert data["text"].startswith("cinematic film still, sea calm") and "FAIL server reachable" in out.err
    assert main(["prompt", "--model", url, "la mer est calme"]) == 2  # without --json: the checks say it, as before
