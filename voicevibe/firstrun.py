"""First launch: which models are not on this machine yet, how big they are, and their download.

`missing_models` looks only at the disk (a local folder, or the Hugging Face cache): it never
touches the network, so a launch with everything in place stays offline. `ModelDownload`
fetches what is missing in a background thread when the operator asks (the window's Download
button, `voicevibe models download`) and reports `DownloadProgress`/`DownloadDone` on a queue
that the window polls: Tk is never touched here. Progress is the size of the file growing in the
cache (`blobs/<etag>.incomplete`), which does not depend on how huggingface_hub draws its bars.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub
from huggingface_hub import constants as hf_constants
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import HfHubHTTPError
from requests.exceptions import RequestException

from voicevibe.config import BUNDLED, NO_MODEL, Config
from voicevibe.events import DownloadDone, DownloadProgress
from voicevibe.hub import DEFAULT_LM_NAME, KNOWN_FILES, ModelError, fetch_file, gguf_help, is_repo_id, locate_stt

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 0.25  # how often the growing file is measured
# Sizes in bytes, shown before the hub is asked. The Mimi codec, config.json and tokenizer sizes are the
# published ones; the LM's is its ~0.99 B parameters in bf16 (estimated); the brain GGUF's as listed.
KNOWN_SIZES: dict[tuple[str, str], int] = {
    ("kyutai/stt-1b-en_fr-candle", "config.json"): 1_315,
    ("kyutai/stt-1b-en_fr-candle", "model.safetensors"): 1_980_000_000,
    ("kyutai/stt-1b-en_fr-candle", "mimi-pytorch-e351c8d8@125.safetensors"): 384_644_900,
    ("kyutai/stt-1b-en_fr-candle", "tokenizer_en_fr_audio_8000.model"): 120_378,
    ("unsloth/gemma-3-1b-it-GGUF", "gemma-3-1b-it-Q4_K_M.gguf"): 806_000_000,
}


@dataclass(frozen=True)
class MissingModel:
    """A model the configuration names that is not on disk."""

    role: str  # "speech" or "brain"
    source: str  # the repo id (downloadable) or the local path named in the config
    files: tuple[str, ...]  # the files still to fetch (a checkpoint's config.json names the rest)
    size: int | None  # bytes to fetch, when known
    problem: str  # what loading it says now
    downloadable: bool

    def describe(self) -> str:
        """One line for the window and the terminal: what, how big, from where."""
        what = "speech model" if self.role == "speech" else "brain model"
        size = f", about {human_size(self.size)}" if self.size else ""
        return f"{what} {self.source} ({', '.join(self.files)}{size})"


def human_size(size: int | None) -> str:
    """1_980_000_000 -> '1.98 GB' (decimal units, as the hub shows them)."""
    if size is None:
        return "size unknown"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} B"


def hub_endpoint() -> str:
    """The hub to download from: $HF_ENDPOINT when set (a mirror), read at call time."""
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or hf_constants.ENDPOINT


def cached(repo: str, filename: str) -> Path | None:
    """The file in the Hugging Face cache, or None (never the network)."""
    found = huggingface_hub.try_to_load_from_cache(repo, filename)
    return Path(found) if isinstance(found, str) else None


def _sized(repo: str, files: list[str]) -> int | None:
    sizes = [KNOWN_SIZES.get((repo, name)) for name in files]
    known = [size for size in sizes if size is not None]
    return sum(known) if len(known) == len(sizes) else None


def stt_files(repo: str) -> list[str]:
    """A checkpoint's files: from its cached config.json, else the known list, else config.json alone."""
    config_path = cached(repo, "config.json")
    if config_path is None:
        return list(KNOWN_FILES.get(repo, ["config.json"]))
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        return ["config.json", config.get("moshi_name", DEFAULT_LM_NAME), config["mimi_name"], config["tokenizer_name"]]
    except (OSError, ValueError, KeyError, TypeError):
        return ["config.json"]  # a broken cached config.json: fetching it again is the fix


def _missing_speech(config: Config) -> MissingModel | None:
    model = config.stt.model
    try:
        locate_stt(model, allow_download=False)
        return None
    except ModelError as e:
        problem = str(e)
    if not is_repo_id(model):
        return MissingModel("speech", model, (), None, problem, False)
    files = [name for name in stt_files(model) if cached(model, name) is None] or ["config.json"]
    return MissingModel("speech", model, tuple(files), _sized(model, files), problem, True)


def _missing_brain(config: Config) -> MissingModel | None:
    brain = config.brain
    if brain.model in (NO_MODEL, BUNDLED) or Path(brain.model).expanduser().is_file():
        return None
    if not is_repo_id(brain.model):
        return MissingModel("brain", brain.model, (), None, f"{brain.model}: no such .gguf file", False)
    if cached(brain.model, brain.model_file) is not None:
        return None
    try:
        fetch_file(brain.model, brain.model_file, allow_download=False, how=gguf_help(brain.model, brain.model_file))
        return None
    except ModelError as e:
        problem = f"{e} Meanwhile the bundled Gemma 3 270M makes the prompts."
    return MissingModel("brain", brain.model, (brain.model_file,), _sized(brain.model, [brain.model_file]),
                        problem, True)


def missing_models(config: Config) -> list[MissingModel]:
    """The speech and brain models the config names that are not on disk (no network)."""
    return [m for m in (_missing_speech(config), _missing_brain(config)) if m is not None]


class ModelDownload:
    """Fetches missing models in a background thread; progress and the end arrive on `events`."""

    def __init__(self, models: list[MissingModel], events: queue.Queue | None = None) -> None:
        self.models = [m for m in models if m.downloadable]
        self.events: queue.Queue = events if events is not None else queue.Queue()
        # A daemon thread: closing the window mid-download abandons it (the hub resumes the .incomplete file).
        self._thread = threading.Thread(target=self._run, name="model-download", daemon=True)
        self._done = 0
        self._total: int | None = 0

    @property
    def running(self) -> bool:
        """True while files are being fetched."""
        return self._thread.is_alive()

    def start(self) -> None:
        """Begin downloading (once)."""
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the download to end."""
        self._thread.join(timeout)

    def _post(self, item: object) -> None:
        self.events.put(item)

    def _run(self) -> None:
        got = {"speech": False, "brain": False}
        try:
            for model in self.models:
                self._fetch_model(model)
                got[model.role] = True
        except ModelError as e:
            self._post(DownloadDone(str(e), got["speech"], got["brain"]))
            return
        except Exception as e:  # top of the download thread: say what broke, the window stays usable
            log.exception("model download failed")
            self._post(DownloadDone(f"download failed: {type(e).__name__}: {e}", got["speech"], got["brain"]))
            return
        self._post(DownloadDone(None, got["speech"], got["brain"]))

    def _fetch_model(self, model: MissingModel) -> None:
        files = list(model.files)
        done_names: set[str] = set()
        while files:
            name = files.pop(0)
            self._fetch(model.source, name)
            done_names.add(name)
            if model.role == "speech" and name == "config.json":  # it names the other files
                files = [n for n in stt_files(model.source) if n not in done_names and cached(model.source, n) is None]

    def _fetch(self, repo: str, filename: str) -> Path:
        """One file, with its size from the hub (HEAD) and progress measured on the growing file."""
        endpoint = hub_endpoint()
        try:
            meta = huggingface_hub.get_hf_file_metadata(huggingface_hub.hf_hub_url(repo, filename, endpoint=endpoint))
        except (HfHubHTTPError, RequestException, OSError) as e:
            raise ModelError(f"{repo}: cannot reach {endpoint} for {filename} ({type(e).__name__}: {e}); "
                             "check the internet connection and press Download again") from e
        if self._total is not None:
            self._total = self._total + meta.size if meta.size is not None else None
        partial = (Path(hf_constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo, repo_type="model") / "blobs"
                   / f"{meta.etag}.incomplete") if meta.etag else None
        result: list[Path | BaseException] = []
        fetcher = threading.Thread(target=_capture(result, lambda: Path(huggingface_hub.hf_hub_download(
            repo, filename, endpoint=endpoint))), name="model-download-file", daemon=True)
        fetcher.start()
        while fetcher.is_alive():
            self._post(DownloadProgress(filename, self._done + _size_of(partial), self._total))
            fetcher.join(SAMPLE_SECONDS)
        outcome = result[0]
        if isinstance(outcome, BaseException):
            if isinstance(outcome, (HfHubHTTPError, RequestException, OSError)):
                raise ModelError(f"{repo}: could not download {filename} ({type(outcome).__name__}: {outcome}); "
                                 "press Download again (it resumes)") from outcome
            raise outcome
        self._done += meta.size or outcome.stat().st_size
        self._post(DownloadProgress(filename, self._done, self._total))
        log.info("downloaded %s from %s", filename, repo)
        return outcome


def _capture(result: list, work: Callable[[], Path]) -> Callable[[], None]:
    def run() -> None:
        try:
            result.append(work())
        except BaseException as e:  # handed to the download thread, which reports it
            result.append(e)
    return run


def _size_of(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0
