"""First launch without models: what is missing and how big, the download over real HTTP (a local stand-in
for the hub, tests/hubserver.py) with progress, the window's Download button under Xvfb while script mode
works, the speech worker started again afterwards, and the headless run's message and exit code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from support.gui import pump, window_for
from support.hubserver import hub_server
from voicevibe import cli
from voicevibe.brain.loading import choose_model
from voicevibe.config import BrainConfig
from voicevibe.config_files import load_config
from voicevibe.doctor.checks import verify
from voicevibe.events import DownloadDone, DownloadProgress
from voicevibe.firstrun import KNOWN_SIZES, ModelDownload, human_size, missing_models
from voicevibe.hub import ModelError, fetch_file, gguf_help, locate_stt
from voicevibe.testing.peer import OscPeer

REPO = "local-test/stt-tiny"  # not a real hub repo: served by tests/hubserver.py
WAIT_S = 120.0


@pytest.fixture
def small_repo(tmp_path: Path) -> Path:
    """A checkpoint-shaped repo whose files are small (the download path, not a loadable model)."""
    folder = tmp_path / "small-repo"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"moshi_name": "lm.safetensors", "mimi_name": "mimi.safetensors",
                                                    "tokenizer_name": "tok.model"}))
    rng = np.random.default_rng(0)
    # huggingface_hub writes in 10 MB pieces: the LM file is big enough to be seen growing.
    for name, size in (("lm.safetensors", 40_000_000), ("mimi.safetensors", 1_000_000), ("tok.model", 2_000)):
        (folder / name).write_bytes(rng.bytes(size))
    return folder


def config_for(tmp_path: Path, peer: OscPeer, stt_model: str = REPO, brain_model: str = "none"):
    return load_config(overrides=[{"stt": {"model": stt_model}, "brain": {"model": brain_model},
                                   "osc": {"targets": f"127.0.0.1:{peer.port}"},
                                   "session": {"log_dir": str(tmp_path / "log")}}], include_defaults_files=False)


def events_until_done(download: ModelDownload) -> list[object]:
    seen: list[object] = []
    while not seen or not isinstance(seen[-1], DownloadDone):
        seen.append(download.events.get(timeout=WAIT_S))
    return seen


def test_missing_models_name_their_files_and_sizes_without_the_network(hub_cache: Path, fast_checkpoint: Path,
                                                                       tmp_path: Path) -> None:
    speech, brain = missing_models(load_config(include_defaults_files=False))
    assert speech.role == "speech" and speech.downloadable
    assert speech.files == ("config.json", "model.safetensors", "mimi-pytorch-e351c8d8@125.safetensors",
                            "tokenizer_en_fr_audio_8000.model")
    assert speech.size == sum(size for (repo, _), size in KNOWN_SIZES.items() if repo == speech.source)
    assert "about 2.36 GB" in speech.describe()
    assert brain.files == ("gemma-3-1b-it-Q4_K_M.gguf",) and "806 MB" in brain.describe()
    assert "bundled Gemma 3 270M" in brain.problem
    here = load_config(overrides=[{"stt": {"model": str(fast_checkpoint)}, "brain": {"model": "bundled"}}],
                       include_defaults_files=False)
    assert missing_models(here) == []
    [gone] = missing_models(load_config(overrides=[{"stt": {"model": str(tmp_path / "nowhere")},
                                                    "brain": {"model": "none"}}], include_defaults_files=False))
    assert not gone.downloadable and "no such folder" in gone.problem
    assert human_size(120_378) == "120 KB" and human_size(None) == "size unknown"


def test_each_models_missing_file_message_names_its_own_files(hub_cache: Path) -> None:
    """The brain's GGUF message names the GGUF and brain.model, never the speech checkpoint's config.json."""
    with pytest.raises(ModelError) as brain:
        fetch_file("unsloth/gemma-3-1b-it-GGUF", "gemma-3-1b-it-Q4_K_M.gguf", allow_download=False,
                   how=gguf_help("unsloth/gemma-3-1b-it-GGUF", "gemma-3-1b-it-Q4_K_M.gguf"))
    text = str(brain.value)
    assert "download gemma-3-1b-it-Q4_K_M.gguf from https://huggingface.co/unsloth/gemma-3-1b-it-GGUF" in text
    assert "set brain.model to its path" in text and "brain.model_file=gemma-3-1b-it-Q4_K_M.gguf" in text
    assert "config.json" not in text and "mimi_name" not in text and "--model FOLDER" not in text
    with pytest.raises(ModelError) as speech:
        locate_stt("kyutai/stt-1b-en_fr-mlx", allow_download=False)
    assert "config.json, and the files it names (mimi_name" in str(speech.value)
    assert "--model FOLDER" in str(speech.value)
    choice = choose_model(BrainConfig(download=False))  # the brain's own fallback note, too
    assert "gemma-3-270m" in choice.name and "config.json" not in choice.note


def test_the_download_fetches_a_checkpoint_over_http_with_progress(hub_cache: Path, small_repo: Path,
                                                                   tmp_path: Path, peer: OscPeer) -> None:
    """config.json first (it names the other files), then the rest; progress grows to the total; the files
    land in the cache as the blobs the hub's ETags name, and the speech model then loads from disk."""
    config = config_for(tmp_path, peer)
    [missing] = missing_models(config)
    assert missing.files == ("config.json",) and missing.size is None  # an unknown repo: sizes come from the hub
    sizes = {p.name: p.stat().st_size for p in small_repo.iterdir()}
    with hub_server({REPO: small_repo}, chunk=512 * 1024, pause=0.02) as hub:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("HF_ENDPOINT", hub.url)
            download = ModelDownload([missing])
            download.start()
            seen = events_until_done(download)
    done = seen[-1]
    assert done == DownloadDone(None, speech=True, brain=False)
    progress = [e for e in seen if isinstance(e, DownloadProgress)]
    big = [p for p in progress if p.file == "lm.safetensors"]
    assert len({p.done for p in big}) >= 3, "the growing file was measured along the way"
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    assert progress[-1].done == progress[-1].total == sum(sizes.values())
    heads = [r.split("/")[-1] for r in hub.requests if r.startswith("HEAD")]
    assert heads[0] == "config.json" and set(heads) == set(sizes)
    files = locate_stt(REPO, allow_download=False)
    for path in (files.lm, files.mimi, files.tokenizer):
        assert verify(path) is None and path.resolve().parent.name == "blobs"
        assert path.read_bytes() == (small_repo / path.name).read_bytes()
    assert missing_models(config) == []
    assert all(isinstance(e, (DownloadProgress, DownloadDone)) for e in seen)  # only these reach the window


def test_a_download_that_cannot_reach_the_hub_says_so_and_can_be_retried(hub_cache: Path, tmp_path: Path,
                                                                         peer: OscPeer,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    [missing] = missing_models(config_for(tmp_path, peer))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    download = ModelDownload([missing])
    download.start()
    done = events_until_done(download)[-1]
    assert not done.speech and "cannot reach http://127.0.0.1:9" in done.error and "Download again" in done.error
    with hub_server({}) as hub:  # a hub without the repo: 404
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        again = ModelDownload([missing])
        again.start()
        done = events_until_done(again)[-1]
    assert not done.speech and "config.json" in done.error


def test_first_launch_window_offers_the_download_and_script_mode_works_meanwhile(
        hub_cache: Path, fast_checkpoint: Path, tmp_path: Path, peer: OscPeer, display: str, guard: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No speech model: the window opens with the strip (which model, Download); a script show makes prompts;
    Download fetches the files with progress in the window; the speech worker starts again and is ready."""
    config = config_for(tmp_path, peer)
    with window_for(config, guard) as window:
        strip = window.models
        assert strip.shown and strip.button.winfo_ismapped()
        assert strip.button.cget("text") == "Download"
        text = strip.label.cget("text")
        assert f"speech model {REPO} (config.json)" in text and "Script mode and typed phrases work" in text
        pump(window.root, lambda: "cannot start" in window.ui.model_status.cget("text"))  # the worker said why
        window.ui.script.insert("1.0", "the moon rises over the frozen sea\n")
        window.ui.mode.set("Script")
        window.start()
        pump(window.root, lambda: window.ui.prompts.entries)
        [sent] = peer.wait_for("/visual/prompt", 1)
        assert "moon" in sent.params[0]
        window.stop()
        pump(window.root, lambda: window.ui.start_button.cget("text") == "▶ Start")

        shown: list[str] = []
        with hub_server({REPO: fast_checkpoint}, chunk=1 << 20, pause=0.002) as hub:
            monkeypatch.setenv("HF_ENDPOINT", hub.url)
            strip.button.invoke()
            assert strip.button.cget("state") == "disabled"

            def finished() -> bool:
                if strip.frame is not None:
                    shown.append(strip.progress_label.cget("text"))
                return strip.frame is None

            pump(window.root, finished)
        assert any("model.safetensors:" in line and " of " in line for line in shown), shown
        assert "models downloaded" in window.ui.message.cget("text")
        pump(window.root, lambda: "speech model ready" in window.ui.model_status.cget("text"))
        assert window.engines.stt.ready


def test_headless_run_without_the_speech_model_says_what_is_missing_and_exits_2(
        hub_cache: Path, tmp_path: Path, speech_wav: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["run", "--no-gui", "--input", str(speech_wav), "--model", REPO, "--set", "brain.model=none",
                     "--set", f'session.log_dir="{tmp_path}"'])
    err = capsys.readouterr().err
    assert code == 2
    assert f"[models] not downloaded yet: speech model {REPO} (config.json)" in err
    assert "Download button" in err and "--script FILE" in err and "voicevibe models download --model" in err
