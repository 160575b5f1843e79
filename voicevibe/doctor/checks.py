"""`voicevibe doctor`: one table of what a show needs, whether it is there, and the fix for each.

A check is a function `Probe -> list[Row]`; `CHECKS` runs in order. To add one (a server the
brain talks to, a MIDI device...), write such a function and append it to `CHECKS`. A row whose
`needed` is False is a warning: the show starts without it. Exit 0 only when every needed row
is ok. Nothing here downloads; the microphone check listens for a moment.

Every fact a check reads comes through `Probe`, so tests replace the platform, the hardware
answers and the memory figures without touching the checks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from voicevibe import macos
from voicevibe.audio import AudioError, list_input_devices
from voicevibe.config import Config, is_server_url
from voicevibe.doctor.mac import check_install_folder, check_xcode_tools, install_places, xcode_tools
from voicevibe.doctor.network import check_targets
from voicevibe.doctor.rows import Row
from voicevibe.firstrun import KNOWN_SIZES, human_size
from voicevibe.hub import ModelError, is_repo_id, locate_stt
from voicevibe.miccheck import LevelCheck, level_check
from voicevibe.osc_targets import Connector, connect_udp
from voicevibe.pycheck import Facts, machine_problem, macos_problem, notes, python_problem, tk_problem
from voicevibe.runtime.session import default_log_dir

log = logging.getLogger(__name__)

EXIT_READY, EXIT_NOT_READY = 0, 1
BASE_MEMORY = 700_000_000  # the app, its worker processes, caches and buffers, beside the weights
DOWNLOAD_FIX = "press Download in the window (`voicevibe`), or run `voicevibe models download`"
REBUILD_LLAMA = ("rebuild it with Metal: `.venv/bin/pip uninstall -y llama-cpp-python`, "
                 "`rm -rf ~/.cache/voicevibe/wheels`, then `make run`")
HEX = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")


def _mlx_metal() -> bool:
    import mlx.core as mx

    return bool(mx.metal.is_available())


def _llama_gpu() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def _memory() -> tuple[int, int]:
    import psutil

    memory = psutil.virtual_memory()
    return memory.available, memory.total


@dataclass
class Probe:
    """The facts the checks read; each can be replaced (tests, another platform)."""

    config: Config
    facts: Facts = field(default_factory=Facts.current)
    platform: str = field(default_factory=lambda: macos.PLATFORM)
    mlx_metal: Callable[[], bool] = _mlx_metal
    llama_gpu: Callable[[], bool] = _llama_gpu
    input_devices: Callable[[], list] = list_input_devices
    listen: Callable[[str | None, int], LevelCheck] = lambda spec, channel: level_check(spec, channel=channel)
    memory: Callable[[], tuple[int, int]] = _memory  # (available, total) bytes
    connect_udp: Connector = connect_udp  # host, port -> a connected UDP socket (the name looked up)
    install_places: Callable[[], dict[str, Path]] = install_places  # the checkout and the virtualenv
    xcode_tools: Callable[[], str | None] = xcode_tools  # `xcode-select -p`'s folder, None without the tools

    @property
    def mac(self) -> bool:
        """True when the checks judge a Mac."""
        return self.platform == "darwin"


Check = Callable[[Probe], list[Row]]


# ---- the checks ---------------------------------------------------------------------------------


def _finding(name: str, found: tuple[str, str] | None, fine: str) -> Row:
    return Row(name, True, fine) if found is None else Row(name, False, found[0], found[1])


def check_python(probe: Probe) -> list[Row]:
    """Python 3.10-3.12, with Tk; on a Mac arm64 and macOS 13.5 or newer."""
    facts = probe.facts
    rows = [_finding("Python", python_problem(facts), f"{'.'.join(map(str, facts.version))} (3.10-3.12 supported)")]
    tk = tk_problem(facts)
    advice = notes(facts)
    if tk is not None:
        rows.append(Row("Tk", False, tk[0], tk[1]))
    elif advice:
        rows.append(Row("Tk", False, f"Tk {facts.tk_version}: trackpad scrolling handled; a mouse wheel jumps",
                        "for Tk 8.6 use python.org's Python 3.12 (make run picks it first)", needed=False))
    else:
        rows.append(Row("Tk", True, f"Tk {facts.tk_patchlevel or facts.tk_version}"))
    if probe.mac:
        rows.append(_finding("Apple Silicon", machine_problem(facts), f"{facts.machine} Python"))
        rows.append(_finding("macOS", macos_problem(facts), f"macOS {facts.mac_version or '?'}"))
    return rows


def check_metal(probe: Probe) -> list[Row]:
    """MLX and llama.cpp see the GPU (Metal) on a Mac; on Linux they run on the CPU."""
    rows = []
    try:
        metal = probe.mlx_metal()
    except ImportError as e:
        return [Row("MLX", False, f"mlx is not installed ({e})", "run `make run` (it sets up .venv)")]
    if probe.mac:
        rows.append(Row("MLX Metal", metal, "Metal available" if metal else "Metal is not available to MLX",
                        "" if metal else "MLX needs an Apple Silicon GPU: run on an M-series Mac, natively "
                        "(not in a VM or under Rosetta)"))
    else:
        rows.append(Row("MLX", True, "CPU (no Metal on Linux)" + (" and a GPU backend" if metal else "")))
    try:
        gpu = probe.llama_gpu()
    except ImportError as e:
        return rows + [Row("llama.cpp", False, f"llama-cpp-python is not installed ({e})", "run `make run`")]
    if probe.mac:
        rows.append(Row("llama.cpp Metal", gpu, "GPU offload available" if gpu else "built without Metal (CPU only)",
                        "" if gpu else REBUILD_LLAMA, needed=probe.config.brain.model != "none"))
    else:
        rows.append(Row("llama.cpp", True, "GPU offload available" if gpu else "CPU build (GGML_NATIVE=OFF)"))
    return rows


def check_microphone(probe: Probe) -> list[Row]:
    """An input is there, and it delivers sound rather than exact zeros (a denied permission)."""
    audio = probe.config.audio
    if audio.input and Path(audio.input).expanduser().is_file():
        return [Row("microphone", True, f"audio.input is a recording ({audio.input}): no microphone needed")]
    try:
        devices = probe.input_devices()
    except AudioError as e:
        return [Row("microphone", False, str(e), "check the audio system (Audio MIDI Setup / pavucontrol)")]
    if not devices:
        where = "System Settings > Sound > Input" if probe.mac else "pavucontrol or `arecord -l`"
        return [Row("microphone", False, "no audio input device found",
                    f"plug in a microphone or an audio interface and check it in {where}")]
    try:
        heard = probe.listen(audio.input or None, audio.channel)
    except AudioError as e:
        return [Row("microphone", False, str(e), "pick another input (voicevibe devices, then --input)")]
    if heard.all_zero:
        return [Row("microphone", False, f"{heard.device} delivers exact zeros ({heard.seconds:.1f} s)",
                    macos.silent_input_fix(probe.mac))]
    return [Row("microphone", True, f"{heard.device}: peak {_dbfs(heard.peak)} over {heard.seconds:.1f} s")]


def check_models(probe: Probe) -> list[Row]:
    """Both models on disk, with their sizes and, in the Hugging Face cache, their checksums."""
    return [_speech_row(probe.config), _brain_row(probe.config)]


def _speech_row(config: Config) -> Row:
    model = config.stt.model
    try:
        files = locate_stt(model, allow_download=False)
    except ModelError as e:
        if is_repo_id(model):
            return Row("speech model", False, f"{model}: not on disk ({str(e).split('. ')[0]})", DOWNLOAD_FIX)
        return Row("speech model", False, str(e), "point stt.model (or --model) at a folder holding the checkpoint's "
                   "files, or at a Hugging Face repo id and download it")
    paths = [files.lm, files.mimi, files.tokenizer]
    bad = [f"{p.name} ({why})" for p in paths if (why := verify(p)) is not None]
    if bad:
        return Row("speech model", False, f"{model}: damaged: {', '.join(bad)}",
                   "delete the damaged file(s) from the Hugging Face cache, then " + DOWNLOAD_FIX)
    size = sum(p.stat().st_size for p in paths)
    checked = "checksums ok" if all(_is_cache_blob(p) for p in paths) else "a local folder: sizes only"
    return Row("speech model", True, f"{model}: {len(paths)} files, {human_size(size)}, {checked}")


def _brain_row(config: Config) -> Row:
    from voicevibe.brain.loading import bundled_gguf
    from voicevibe.config import BUNDLED, NO_MODEL

    brain = config.brain
    if brain.model == NO_MODEL:
        return Row("brain model", True, 'brain.model = "none": fallback prompts only')
    if is_server_url(brain.model):
        return Row("brain model", True, f"on a server ({brain.model}): checked below")
    try:
        if brain.model == BUNDLED:
            path = bundled_gguf()
        elif Path(brain.model).expanduser().is_file():
            path = Path(brain.model).expanduser()
        elif is_repo_id(brain.model):
            from voicevibe.firstrun import cached

            found = cached(brain.model, brain.model_file)
            if found is None:
                return Row("brain model", False, f"{brain.model}/{brain.model_file}: not on disk; the bundled "
                           "Gemma 3 270M stands in", DOWNLOAD_FIX, needed=False)
            path = found
        else:
            return Row("brain model", False, f"brain.model = {brain.model!r}: no such file",
                       "set brain.model to a .gguf file, a Hugging Face repo id, bundled or none", needed=False)
    except (ImportError, OSError) as e:
        return Row("brain model", False, f"the bundled model is unavailable ({e})", "run `make run`", needed=False)
    why = verify(path)
    if why is None:
        with open(path, "rb") as fh:
            why = None if fh.read(4) == b"GGUF" else "not a GGUF file"
    if why is not None:
        return Row("brain model", False, f"{path.name}: {why}", "delete it, then " + DOWNLOAD_FIX, needed=False)
    return Row("brain model", True, f"{path.name}, {human_size(path.stat().st_size)}")


def check_osc(probe: Probe) -> list[Row]:
    """Every OSC target's name resolves and a probe datagram leaves (macOS: the Local Network permission)."""
    return check_targets(probe.config.osc.targets, mac=probe.mac, connect=probe.connect_udp)


def check_memory(probe: Probe) -> list[Row]:
    """Free memory against what the models need (their weights plus the app's own share)."""
    need = model_bytes(probe.config) + BASE_MEMORY
    available, total = probe.memory()
    figures = f"{human_size(available)} free of {human_size(total)}; the models need about {human_size(need)}"
    if total < need:
        return [Row("memory", False, figures, "this machine is too small for these models: a smaller brain model "
                    "(brain.model, e.g. bundled) or a quantized speech model")]
    if available < need:
        return [Row("memory", False, figures, "quit other apps before the show (browsers, editors)", needed=False)]
    return [Row("memory", True, figures)]


def check_log_folder(probe: Probe) -> list[Row]:
    """The session log folder exists or can be made, and takes a file."""
    session = probe.config.session
    folder = Path(session.log_dir).expanduser() if session.log_dir else default_log_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
    except OSError as e:
        return [Row("log folder", False, f"{folder}: {e.strerror or e}",
                    "set session.log_dir to a writable folder (or free the disk)")]
    return [Row("log folder", True, f"{folder} is writable")]


def check_server(probe: Probe) -> list[Row]:
    """With a server as brain.model: reachable, the model listed, structured output, an answer in time.

    Not needed for the show to start: without the server the brain's fallback prompts go out.
    """
    from voicevibe.doctor.server import server_checks

    return [dataclasses.replace(row, needed=False) for row in server_checks(probe.config.brain)]


CHECKS: list[Check] = [check_python, check_metal, check_microphone, check_models, check_server, check_osc,
                       check_memory, check_log_folder, check_install_folder, check_xcode_tools]


# ---- helpers ------------------------------------------------------------------------------------


def model_bytes(config: Config) -> int:
    """The models' weights on disk (known sizes when not downloaded yet): about what they take in memory."""
    total = 0
    try:
        files = locate_stt(config.stt.model, allow_download=False)
        total += sum(p.stat().st_size for p in (files.lm, files.mimi))
    except (ModelError, OSError):
        total += sum(size for (repo, _), size in KNOWN_SIZES.items() if repo == config.stt.model)
    from voicevibe.brain.loading import bundled_gguf
    from voicevibe.config import BUNDLED, NO_MODEL
    from voicevibe.firstrun import cached

    brain = config.brain
    if brain.model == NO_MODEL:
        return total
    try:
        if brain.model == BUNDLED:
            path: Path | None = bundled_gguf()
        elif is_repo_id(brain.model):
            # not downloaded yet: the bundled model runs until it is, and the real one's size counts then
            path = cached(brain.model, brain.model_file)
        else:
            path = Path(brain.model).expanduser()
        total += path.stat().st_size if path is not None else KNOWN_SIZES.get((brain.model, brain.model_file), 0)
    except (ImportError, OSError):
        pass
    return total


def _is_cache_blob(path: Path) -> bool:
    resolved = path.resolve()
    return resolved.parent.name == "blobs" and bool(HEX.match(resolved.name))


def verify(path: Path) -> str | None:
    """A cached file's content against its blob name (sha256 for LFS files, git's sha1 otherwise); None: fine.

    Files outside the Hugging Face cache have nothing to compare with and pass.
    """
    resolved = path.resolve()
    if not resolved.is_file():
        return "missing"
    if not _is_cache_blob(resolved):
        return None
    size = resolved.stat().st_size
    if len(resolved.name) == 64:
        digest = hashlib.sha256()
    else:
        digest = hashlib.sha1()
        digest.update(f"blob {size}\0".encode())
    with open(resolved, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return None if digest.hexdigest() == resolved.name else "checksum mismatch"


def _dbfs(linear: float) -> str:
    return f"{20 * math.log10(linear):.1f} dBFS" if linear > 0 else "-inf dBFS"


def run_checks(probe: Probe, checks: list[Check] | None = None) -> list[Row]:
    """Every check's rows; a check that breaks becomes a failed row naming it."""
    rows: list[Row] = []
    for check in checks if checks is not None else CHECKS:
        started = time.monotonic()
        try:
            rows.extend(check(probe))
        except Exception as e:  # one broken check must not hide the others' answers
            log.exception("doctor check %s failed", check.__name__)
            rows.append(Row(check.__name__.removeprefix("check_"), False, f"the check failed: {type(e).__name__}: {e}",
                            "run `voicevibe doctor -v` and report the log"))
        log.debug("%s took %.2f s", check.__name__, time.monotonic() - started)
    return rows


def ready(rows: list[Row]) -> bool:
    """True when the show can start: every needed row is ok."""
    return all(row.ok or not row.needed for row in rows)


def render(rows: list[Row]) -> str:
    """The table: status, name, what was found; the fix under each problem; a verdict."""
    width = max(len(row.name) for row in rows) if rows else 10
    lines = ["VoiceVibe doctor: what a show needs"]
    for row in rows:
        mark = "ok  " if row.ok else "FAIL" if row.needed else "warn"
        lines.append(f"  {mark}  {row.name:<{width}}  {row.detail}")
        if not row.ok and row.fix:
            lines.append(f"        {'':<{width}}  fix: {row.fix}")
    problems = sum(1 for row in rows if not row.ok and row.needed)
    lines.append("The show can start." if problems == 0 else
                 f"The show cannot start: {problems} problem(s) above, each with its fix.")
    return "\n".join(lines)


def main(config: Config, probe: Probe | None = None) -> int:
    """Print the table; EXIT_READY only when the show can start."""
    rows = run_checks(probe or Probe(config))
    print(render(rows))
    return EXIT_READY if ready(rows) else EXIT_NOT_READY

