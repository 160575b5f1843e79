"""Model files: a local folder, the Hugging Face cache, or a download with progress.

The show never waits on a download: front ends that run live call `locate_stt` with
`allow_download=False` and tell the operator to download first (the window's Download button,
firstrun.py, or `voicevibe models download`).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import huggingface_hub
from huggingface_hub import constants as hf_constants
from huggingface_hub.utils import HfHubHTTPError, LocalEntryNotFoundError
from requests.exceptions import RequestException

log = logging.getLogger(__name__)

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
DEFAULT_LM_NAME = "model.safetensors"  # what Kyutai's scripts use when config.json has no moshi_name
# The files of the default checkpoint, named in errors before config.json is known.
KNOWN_FILES = {
    "kyutai/stt-1b-en_fr-candle": ["config.json", "model.safetensors",
                                   "mimi-pytorch-e351c8d8@125.safetensors",
                                   "tokenizer_en_fr_audio_8000.model"],
}


class ModelError(RuntimeError):
    """A model cannot be found, fetched or loaded; the message says what to do."""


@dataclass(frozen=True)
class SttFiles:
    """Where each file of a Kyutai STT checkpoint is, plus its parsed config.json."""

    source: str  # the repo id or folder the user named
    config: dict[str, Any]
    lm: Path
    mimi: Path
    tokenizer: Path


def is_repo_id(name: str) -> bool:
    """True for a Hugging Face `owner/name` that is not an existing local path."""
    return bool(REPO_ID.match(name)) and not Path(name).expanduser().exists()


@dataclass(frozen=True)
class MissingHelp:
    """How the error for a missing model file tells the user to get it: which files, and where they go."""

    command: str  # the download command with internet
    files: tuple[str, ...]  # what to download by hand
    place: str  # where the downloaded files go, and which setting points at them


def stt_help(repo: str) -> MissingHelp:
    """A Kyutai STT checkpoint: config.json and the files it names, in one folder passed as --model."""
    files = KNOWN_FILES.get(repo) or ["config.json", "and the files it names (mimi_name, "
                                      "tokenizer_name, moshi_name or model.safetensors)"]
    return MissingHelp(f"voicevibe models download --model {repo}", tuple(files),
                       "into one folder and pass `--model FOLDER`")


def gguf_help(repo: str, filename: str) -> MissingHelp:
    """A brain GGUF: the one file, and brain.model set to its path."""
    return MissingHelp(f"voicevibe models download --set brain.model={repo} --set brain.model_file={filename}",
                       (filename,), f"and set brain.model to its path ({filename})")


def _missing_help(repo: str, what: str, how: MissingHelp) -> str:
    return (f"On a machine with internet, press Download in the window or run `{how.command}` "
            f"(files go to {hf_constants.HF_HUB_CACHE}), or download {', '.join(how.files)} from "
            f"https://huggingface.co/{repo} {how.place}. ({what})")


def fetch_file(repo: str, filename: str, *, allow_download: bool, how: MissingHelp | None = None) -> Path:
    """One file of a hub repo: from the cache if there, else downloaded with a progress bar.

    `how` says what the error message tells the user to download (default: the STT checkpoint's files).
    """
    how = how or stt_help(repo)
    try:
        return Path(huggingface_hub.hf_hub_download(repo, filename, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    if not allow_download:
        raise ModelError(f"{repo}: {filename} is not downloaded yet. "
                         + _missing_help(repo, "a live run never downloads during the show", how))
    log.info("downloading %s from %s", filename, repo)
    try:
        return Path(huggingface_hub.hf_hub_download(repo, filename))
    except (HfHubHTTPError, RequestException, LocalEntryNotFoundError, OSError) as e:
        raise ModelError(f"{repo}: could not download {filename}: {type(e).__name__}: {str(e).rstrip('.')}. "
                         + _missing_help(repo, "no cached copy either", how)) from e


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: not a readable checkpoint config.json ({e})") from e
    if not isinstance(config, dict):
        raise ModelError(f"{path}: config.json must hold a JSON object")
    for key in ("mimi_name", "tokenizer_name"):
        if not isinstance(config.get(key), str):
            raise ModelError(f"{path}: config.json has no {key!r}; is this a Kyutai STT checkpoint?")
    return config


def locate_stt(model: str, *, allow_download: bool = True) -> SttFiles:
    """Find (or fetch) every file of a Kyutai STT checkpoint given a repo id or a folder."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        config = _read_config(folder / "config.json")
        names = [config.get("moshi_name", DEFAULT_LM_NAME), config["mimi_name"], config["tokenizer_name"]]
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise ModelError(f"{folder}: missing {', '.join(missing)} (named by its config.json); "
                             "copy the checkpoint's files into this folder")
        lm, mimi, tok = (folder / n for n in names)
        return SttFiles(str(folder), config, lm, mimi, tok)
    if folder.exists():
        raise ModelError(f"{model}: is a file; --model takes a checkpoint folder or a Hugging Face repo id")
    if not REPO_ID.match(model):
        raise ModelError(f"{model}: no such folder, and not a Hugging Face repo id (owner/name)")
    config = _read_config(fetch_file(model, "config.json", allow_download=allow_download))
    lm, mimi, tok = (fetch_file(model, n, allow_download=allow_download) for n in
                     (config.get("moshi_name", DEFAULT_LM_NAME), config["mimi_name"], config["tokenizer_name"]))
    return SttFiles(model, config, lm, mimi, tok)
