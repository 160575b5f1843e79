"""Is the brain's server usable? Reachable, the model listed, the answer format taken, a test answer in time.

`server_checks` gives one row per check, each with what to do when it fails; `voicevibe prompt
--model URL` prints them, and `voicevibe doctor` can list them beside its own.
"""

from __future__ import annotations

import time

from voicevibe.brain.assets import load_assets
from voicevibe.brain.core import Brain
from voicevibe.brain.prompting import BackendUnavailable
from voicevibe.brain.server import ServerError, ServerPromptModel, Unreachable, api_key
from voicevibe.config import BrainConfig, is_server_url
from voicevibe.doctor.rows import Row
from voicevibe.events import Phrase

TEST_PHRASE = "a red boat on a calm sea at dawn"
START_SERVER = ("start the server (Ollama: `ollama serve`; llama.cpp: `llama-server -m MODEL.gguf --port 8080`; "
                "LM Studio: Developer tab, Start Server), or correct brain.model")


def server_checks(config: BrainConfig) -> list[Row]:
    """Check the server brain.model names; no rows when brain.model is not a server URL.

    Stops at the first failing check that the later ones depend on (an unreachable server
    has no model list to look at).
    """
    if not is_server_url(config.model):
        return []
    key, key_note = api_key(config)
    rows = []
    if config.api_key_env:
        rows.append(Row("API key", not key_note, key_note or f"from ${config.api_key_env}",
                          f"export {config.api_key_env}=<the server's key> before starting VoiceVibe" if key_note
                          else ""))
    model = ServerPromptModel(config, load_assets(config.blocklist_file).examples, api_key=key)
    try:
        rows += _check_model(model, config)
    finally:
        model.close()
    return rows


def _check_model(model: ServerPromptModel, config: BrainConfig) -> list[Row]:
    start = time.perf_counter()
    try:
        listed = model.list_models()
    except Unreachable as e:
        return [Row("server reachable", False, str(e), START_SERVER)]
    except ServerError as e:
        return [Row("server reachable", False, *_split(str(e)))]
    rows = [Row("server reachable", True, f"{model.base_url} listed {len(listed)} model(s) in "
                  f"{(time.perf_counter() - start) * 1000:.0f} ms")]
    try:
        model.prepare()
    except BackendUnavailable as e:
        failed = "model listed" if not model.served else "answer format"
        return rows + [Row(failed, False, *_split(str(e)))]
    rows += [Row("model listed", True, model.served),
             Row("answer format", True, f"{model.output} (brain.server_output = {config.server_output})")]
    assets = load_assets(config.blocklist_file)
    brain = Brain(model, config, assets)
    start = time.perf_counter()
    brain.warm_up()  # as at the start of a show: the server caches the fixed part of the message
    warm_ms = (time.perf_counter() - start) * 1000.0
    prompt = brain.step(Phrase(TEST_PHRASE, 0.0, 1.0))
    if prompt is not None and prompt.source == "model":
        return rows + [Row("test answer", True, f"{prompt.latency_ms:.0f} ms after a {warm_ms:.0f} ms warm-up "
                             f"(budget {config.time_budget_seconds:g} s): {prompt.text}")]
    why = prompt.reason if prompt is not None else "no prompt"
    if "time budget" in why:
        return rows + [Row("test answer", False, f"the fallback answered: {why}",
                             f"raise brain.time_budget_seconds (now {config.time_budget_seconds:g} s), or use a "
                             "smaller model or a faster machine")]
    detail, fix = _split(why)
    return rows + [Row("test answer", False, f"the fallback answered: {detail}", fix)]


def _split(message: str) -> tuple[str, str]:
    """(what went wrong, what to do): the fix a server error names after "; set" or ": set", else a pointer."""
    for mark in (": set ", "; set "):
        detail, sep, fix = message.rpartition(mark)
        if sep:
            return detail, f"set {fix}"
    return message, "check the server's own log; brain.server_output picks how answers are held to JSON"
