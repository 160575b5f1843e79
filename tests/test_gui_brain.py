"""The window's brain section: which brain is in use, and the switch between a server and the local model,
mid-show, with real worker processes (only the brain's restarts) and a real llama_cpp.server, under Xvfb."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.fakes import RecordingControls, RecordingPipeline
from support.gui import pump, window_for
from support.llamaserver import ALIAS, LlamaServer
from voicevibe.config import Config
from voicevibe.config_files import load_config
from voicevibe.gui.brain import NO_SWITCH
from voicevibe.runtime.controls import Controls
from voicevibe.runtime.engines import Engines
from voicevibe.testing.peer import OscPeer

WAIT = 180.0  # a deadline for something that must happen, not a speed check


def test_the_brain_in_use_is_shown_and_the_switch_swaps_and_saves_it(display, guard, tmp_path):
    url = "http://192.168.1.30:11434/v1"
    config = load_config(overrides=[{"brain": {"model": "bundled", "switch_model": url,
                                               "server_model": "mistral-nemo"}}], include_defaults_files=False)
    controls = RecordingControls(config)
    engines = controls.engines
    settings = tmp_path / "settings.toml"
    with window_for(config, guard, pipeline_factory=RecordingPipeline, controls=controls, settings_file=settings) as w:
        loading = ", loading (fallback prompts meanwhile)"  # these engines start no worker
        assert w.ui.brain_source.cget("text") == f"In use: local: Gemma 3 270M (bundled){loading}"
        assert w.ui.brain_switch.cget("text") == f"Switch to server: mistral-nemo @ {url}"
        w.ui.brain_switch.invoke()
        assert (engines.configs[-1].brain.model, engines.configs[-1].brain.switch_model) == (url, "bundled")
        assert w.ui.brain_source.cget("text") == f"In use: server: mistral-nemo @ {url}{loading}"
        assert w.ui.brain_switch.cget("text") == "Switch to local: Gemma 3 270M (bundled)"
        w.save_settings()
    assert f'model = "{url}"' in settings.read_text() and 'switch_model = "bundled"' in settings.read_text()
    with window_for(Config(), guard, pipeline_factory=RecordingPipeline, controls=RecordingControls()) as w:
        assert w.ui.brain_switch.cget("text") == NO_SWITCH and w.ui.brain_switch.cget("state") == "disabled"
        w.brain.switch()  # nothing to switch to: nothing happens
        assert w.engines.configs == []


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LlamaServer]:
    started = LlamaServer(tmp_path / "server.log").start()
    try:
        yield started
    finally:
        started.kill()


def test_switching_from_a_server_to_the_local_model_mid_show_restarts_only_the_brain(
        display, guard, tmp_path: Path, fast_checkpoint: Path, server: LlamaServer, peer: OscPeer) -> None:
    config = load_config(overrides=[{
        "stt": {"model": str(fast_checkpoint)}, "osc": {"targets": f"127.0.0.1:{peer.port}", "preset": "vocevibe"},
        "session": {"log_dir": str(tmp_path / "logs"), "record_audio": "off"},
        "brain": {"model": server.url, "switch_model": "bundled", "time_budget_seconds": 60.0, "summary": False}}],
        include_defaults_files=False)
    engines = Engines(config)
    with window_for(config, guard, controls=Controls(config, engines), settings_file=tmp_path / "settings.toml") as w:
        pump(w.root, lambda: engines.stt.worker.ready and engines.brain.worker.ready, timeout=WAIT)
        stt_pid, brain_pid = engines.stt.worker.pid, engines.brain.worker.pid
        w.ui.mode.set("Script")
        w.start()  # an empty script: the show runs, typed phrases reach the brain
        pump(w.root, lambda: w.pipeline is not None and w.pipeline.started)
        w.inputs.say("a lantern on the pier")
        pump(w.root, lambda: len(peer.on("/visual/json")) >= 1, timeout=WAIT)
        assert w.ui.brain_source.cget("text") == f"In use: server: {ALIAS} @ {server.url}"  # the worker's word
        w.ui.brain_switch.invoke()
        assert w.ui.brain_source.cget("text").startswith("In use: local: Gemma 3 270M (bundled), loading")
        pump(w.root, lambda: engines.brain.worker.ready and engines.brain.worker.pid != brain_pid, timeout=WAIT)
        pump(w.root, lambda: w.ui.brain_source.cget("text") == "In use: local: gemma-3-270m (bundled)")
        assert w.ui.brain_status.cget("text") == "brain: local: gemma-3-270m (bundled)"
        w.inputs.say("the sea at night under the stars")
        pump(w.root, lambda: len(peer.on("/visual/json")) >= 2, timeout=WAIT)
        assert engines.stt.worker.pid == stt_pid  # the speech engine kept its model
        w.stop()
        pump(w.root, lambda: w._ending is None, timeout=WAIT)
    sent = [json.loads(m.params[0]) for m in peer.on("/visual/json")]
    assert [(p["source"], p["model"]) for p in sent] == [("model", f"{ALIAS} @ {server.url}"),
                                                         ("model", "gemma-3-270m (bundled)")], sent
