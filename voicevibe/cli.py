"""The `voicevibe` command: run, transcribe, prompt, replay, devices, models download, doctor, config.

Exit codes: 0 ok, 2 bad usage or bad input (file, device, config, model), 130 interrupted;
`doctor`: 1 when the show cannot start.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from voicevibe import __version__
from voicevibe.audio import AudioError, FileSource, list_input_devices
from voicevibe.brain.assets import AssetError
from voicevibe.config import FRAME_SECONDS, Config, ConfigError
from voicevibe.config_files import documented_defaults, load_config, parse_override
from voicevibe.dsp import Dsp
from voicevibe.events import (
    Command,
    Event,
    Freeze,
    Levels,
    Panic,
    PauseBrain,
    PhraseEnd,
    SeedLock,
    Status,
    Word,
    to_json_dict,
)
from voicevibe.hub import ModelError, locate_stt
from voicevibe.launcher import keep_awake
from voicevibe.runtime.session import SessionLogError

if TYPE_CHECKING:
    from voicevibe.midi.input import MidiInput
    from voicevibe.runtime.controls import Controls

log = logging.getLogger("voicevibe")

EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 2, 130
PROGRESS_MIN_SECONDS = 30.0  # files shorter than this get no progress bar


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    base = argparse.ArgumentParser(add_help=False)
    base.add_argument("--config", type=Path, action="append", default=[], metavar="FILE",
                      help="extra config.toml layered on top of the defaults (repeatable)")
    base.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                      help="override one setting, e.g. --set dsp.gain_db=6 (repeatable)")
    base.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    common = argparse.ArgumentParser(add_help=False, parents=[base])
    common.add_argument("--model", help="STT model: Hugging Face repo id or local folder (stt.model)")

    parser = argparse.ArgumentParser(prog="voicevibe", description="Live voice to visuals.")
    parser.add_argument("--version", action="version", version=f"voicevibe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", parents=[common], help="the show: the window, or the terminal with --no-gui")
    run.add_argument("--input", help="device index, device-name part, or an audio file (rehearsal)")
    run.add_argument("--channel", type=int, help="input channel on a multi-channel interface (1 = first)")
    run.add_argument("--fast", action="store_true", help="file input as fast as possible")
    run.add_argument("--no-gui", action="store_true", help="run in the terminal: transcript, prompts, levels")
    run.add_argument("--script", help="a text file whose lines drive the brain directly ('-': stdin); "
                     "without --input no audio is used")
    run.add_argument("--osc", action="append", metavar="HOST:PORT",
                     help="OSC receiver (repeatable; replaces osc.targets)")
    run.add_argument("--preset", choices=("generic", "vocevibe", "scope"), help="OSC address set (osc.preset)")
    run.add_argument("--record", action=argparse.BooleanOptionalAction, default=None,
                     help="record the input as FLAC beside the session log (session.record_audio)")
    run.add_argument("--show", metavar="FILE", help="a show file: cues, triggers, seeds (show.file)")
    run.add_argument("--midi", metavar="PORT", help="MIDI controller port, or part of its name (midi.port)")

    rp = sub.add_parser("replay", parents=[base], help="re-send a session log's prompts with their timing")
    rp.add_argument("log", type=Path, help="a session log (.jsonl)")
    rp.add_argument("--osc", action="append", metavar="HOST:PORT", help="OSC receiver (repeatable)")
    rp.add_argument("--preset", choices=("generic", "vocevibe", "scope"), help="OSC address set (osc.preset)")
    rp.add_argument("--speed", type=float, default=1.0, help="2 = twice as fast (default 1)")

    tr = sub.add_parser("transcribe", parents=[common], help="transcribe an audio file")
    tr.add_argument("audio", type=Path, help="wav, flac, ogg or mp3; any rate, stereo is mixed down")
    tr.add_argument("--realtime", action="store_true", help="pace the file at real time, as a live input")
    tr.add_argument("--json", action="store_true", help="one JSON event per line")
    tr.add_argument("--no-dsp", action="store_true", help="feed the audio untouched (AGC and gate off)")

    pr = sub.add_parser("prompt", parents=[base], help="turn phrases into image prompts (the brain alone)")
    pr.add_argument("--model", help="brain model: a .gguf file, a Hugging Face repo id "
                    "(with brain.model_file), 'bundled', or an OpenAI-compatible server's URL, which is "
                    "checked first (brain.model)")
    pr.add_argument("phrases", nargs="*", help="phrases to turn into prompts; none: one per line from stdin")
    pr.add_argument("--previous", default="", help="the prompt on screen now (continuity)")
    pr.add_argument("--style", help="style preset (brain.style), e.g. cinematic, film-noir, synthwave, ukiyo-e")
    pr.add_argument("--vibe", help="global vibe added to every prompt (brain.vibe)")
    pr.add_argument("--no-llm", action="store_true", help="fallback prompt builder only, no language model")
    pr.add_argument("--json", action="store_true", help="one JSON ImagePrompt event per line")

    sub.add_parser("devices", help="list audio input devices")
    sub.add_parser("midi", parents=[base], help="list MIDI input ports (midi.backend picks the MIDI system)")
    models = sub.add_parser("models", help="manage model files")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    msub.add_parser("download", parents=[common], help="fetch the STT and brain models into the cache, with progress")

    run.add_argument("--quit-after", type=float, help=argparse.SUPPRESS)  # tests: close the window after N s
    sub.add_parser("install-launcher", help="put a double-clickable VoiceVibe on the Desktop (macOS .app, "
                   "Linux .desktop entry)")

    doc = sub.add_parser("doctor", parents=[common], help="check what a show needs (Python, GPU, microphone, "
                         "models, OSC targets, memory, log folder), with the fix for each; exit 0 when ready")
    doc.add_argument("--input", help="the input to check (audio.input): device index, name part, or a file")
    doc.add_argument("--channel", type=int, help="input channel to check (audio.channel)")
    doc.add_argument("--osc", action="append", metavar="HOST:PORT", help="OSC receiver to check (osc.targets)")
    doc.add_argument("--speed", action="store_true", help="time the speech model and the brain on this machine "
                     "(about a minute): real-time factor, step p50/p95, brain latency; exit 1 if it cannot keep up")

    cfg = sub.add_parser("config", parents=[common], help="print the effective configuration")
    cfg.add_argument("--defaults", action="store_true", help="print every key with its default and doc")
    return parser


def load(args: argparse.Namespace) -> Config:
    """The config from files, then --set, then dedicated flags."""
    overrides = [parse_override(s) for s in args.set]
    if getattr(args, "model", None):
        overrides.append({"brain" if args.command == "prompt" else "stt": {"model": args.model}})
    if args.command == "doctor" and args.input is not None:
        overrides.append({"audio": {"input": args.input}})
    if getattr(args, "channel", None) is not None:
        overrides.append({"audio": {"channel": args.channel}})
    for flag in ("style", "vibe"):
        if getattr(args, flag, None) is not None:
            overrides.append({"brain": {flag: getattr(args, flag)}})
    if getattr(args, "fast", False):
        overrides.append({"audio": {"realtime": False}})
    if getattr(args, "osc", None):
        overrides.append({"osc": {"targets": ", ".join(args.osc)}})
    if getattr(args, "preset", None):
        overrides.append({"osc": {"preset": args.preset}})
    for flag, section, key in (("show", "show", "file"), ("midi", "midi", "port")):
        if getattr(args, flag, None) is not None and args.command == "run":
            overrides.append({section: {key: getattr(args, flag)}})
    if getattr(args, "record", None) is not None:
        overrides.append({"session": {"record_audio": "on" if args.record else "off"}})
    if getattr(args, "realtime", None) is not None and args.command == "transcribe":
        overrides.append({"audio": {"realtime": args.realtime}})
    return load_config(args.config, overrides)


def transcribe(blocks: Iterable[np.ndarray], engine: Any, dsp: Dsp | None = None,
               on_levels: Callable[[Levels], None] | None = None) -> Iterator[Event]:
    """Run blocks through DSP (optional) and the engine, then flush: the offline pipeline."""
    for block in blocks:
        if dsp is not None:
            block, levels = dsp.process(block)
            if on_levels is not None:
                on_levels(levels)
        yield from engine.step(block)
    yield from engine.flush()


def cmd_transcribe(args: argparse.Namespace, config: Config) -> int:
    """Transcribe a file: plain text, or one JSON event per line."""
    from voicevibe.speech.engine import SttEngine, load_model

    source = FileSource(args.audio, realtime=config.audio.realtime)  # bad files fail before the model loads
    model = load_model(locate_stt(config.stt.model), config.stt.dtype)
    engine = SttEngine(model, config.stt)
    log.info("model %s loaded (%s, pause detection %s)", config.stt.model, config.stt.dtype,
             "on" if engine.use_vad else "off")
    dsp = None if args.no_dsp else Dsp(config.dsp)
    show = source.duration_seconds >= PROGRESS_MIN_SECONDS
    with tqdm(total=round(source.duration_seconds, 1), unit="s audio", disable=not show,
              file=sys.stderr, leave=False) as bar:
        def on_levels(_: Levels) -> None:
            bar.update(FRAME_SECONDS)

        for event in transcribe(source.blocks(), engine, dsp, on_levels if dsp else None):
            if args.json:
                print(json.dumps(to_json_dict(event), ensure_ascii=False), flush=True)
            elif isinstance(event, Word):
                print(event.text, end="", flush=True)
            elif isinstance(event, PhraseEnd):
                print(flush=True)
    if not args.json:
        print()
    return EXIT_OK


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    """The show in the terminal (--no-gui): until Ctrl-C, or the end of a rehearsal file or script."""
    from voicevibe.runtime.controls import Controls
    from voicevibe.runtime.engines import Engines
    from voicevibe.runtime.pipeline import Pipeline
    from voicevibe.terminal import TerminalFront

    if args.script == "-":
        script = sys.stdin
    elif args.script:
        script = read_script(Path(args.script))
    else:
        script = None
    input_spec = args.input if args.input is not None else (None if script is not None else config.audio.input)
    if input_spec is not None and not models_ready(config):
        return EXIT_BAD_INPUT  # the audio needs the speech model; a script alone does not
    record = config.session.record_audio == "on"
    engines = Engines(config)
    awake = keep_awake(os.getpid())  # macOS: caffeinate while the show runs, as the window does
    controls = None
    try:
        controls = Controls(config, engines)  # a bad show file stops here, before anything starts
        pipeline = Pipeline(config, controls=controls, input_spec=input_spec, script=script, record_audio=record)
        front = TerminalFront(pipeline)
        pipeline.start()
        midi = start_midi(config, controls)
        if script is not sys.stdin:
            front.read_typed_lines()
        try:
            return front.run()
        except KeyboardInterrupt:
            print("\nstopping...", file=sys.stderr)
            pipeline.stop()
            front.drain()
            return EXIT_INTERRUPTED
        finally:
            if midi is not None:
                midi.close()
            front.close()
    finally:
        if controls is not None:
            controls.close()
        engines.close()
        if awake is not None:
            awake.terminate()
            awake.wait(5)


def models_ready(config: Config) -> bool:
    """First launch, headless: say which models are missing and how big; False when the speech model is."""
    from voicevibe.firstrun import missing_models

    missing = missing_models(config)
    for model in missing:
        print(f"[models] not downloaded yet: {model.describe()}", file=sys.stderr)
    speech = [m for m in missing if m.role == "speech"]
    if any(m.role == "brain" for m in missing) and not speech:
        print("[models] the bundled Gemma 3 270M makes the prompts until then", file=sys.stderr)
    if not speech:
        return True
    print(f"voicevibe: error: {speech[0].problem}\n  The window (`voicevibe`) has a Download button with "
          "progress; `--script FILE` (without --input) runs without the speech model.", file=sys.stderr)
    return False


def start_midi(config: Config, controls: Controls) -> MidiInput | None:
    """The MIDI controller for a headless show (midi.port), or None; a MIDI system that cannot start is
    reported and the show goes on without it."""
    from voicevibe.midi.input import MidiError, MidiInput

    if not config.midi.port:
        return None

    def state(kind: type[Command]) -> bool:
        osc = controls.osc
        return {Panic: osc.panicked, Freeze: osc.frozen, PauseBrain: controls.engines.brain.paused,
                SeedLock: osc.seeds.locked}.get(kind, False)

    try:
        return MidiInput(config.midi, controls.apply, report=controls.feed.post, state=state).start()
    except MidiError as e:
        controls.feed.post(Status("midi", f"{e} — the show goes on without MIDI", "error"))
        return None


def cmd_midi(config: Config) -> int:
    """List the MIDI input ports (or say there are none)."""
    from voicevibe.midi.input import list_ports

    names = list_ports(config.midi)
    if not names:
        print(f"no MIDI input ports found ({config.midi.backend}): plug in a controller")
    for name in names:
        print(name)
    return EXIT_OK


def read_script(path: Path) -> list[str]:
    """A script's lines; a clear error for a missing or unreadable file."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ScriptError(f"{path}: script file not found — check the path") from None
    except UnicodeDecodeError as e:
        raise ScriptError(f"{path}: not a UTF-8 text file ({e.reason}) — save the script as UTF-8 text") from None
    except OSError as e:
        raise ScriptError(f"{path}: cannot read the script: {e.strerror}") from None


class ScriptError(ValueError):
    """A --script file cannot be used."""


def cmd_prompt(args: argparse.Namespace, config: Config) -> int:
    """Phrases (arguments or stdin lines) -> prompts, one per line; this thread loads and owns the model."""
    from voicevibe.brain.assets import load_assets
    from voicevibe.brain.core import Brain
    from voicevibe.brain.loading import load_prompt_model
    from voicevibe.events import ImagePrompt, Phrase

    assets = load_assets(config.brain.blocklist_file)
    assets.style(config.brain.style)  # an unknown style fails before the model loads
    model = None
    absent = "--no-llm"
    if not args.no_llm:
        failed = server_failure(config)
        if failed and not args.json:
            return EXIT_BAD_INPUT
        if failed:  # --json: every phrase still gets its JSON answer, the fallback's reason saying what failed
            args.no_llm, absent = True, failed
    if not args.no_llm:
        loaded = load_prompt_model(config.brain, assets)
        if loaded.note:
            print(f"[brain] {loaded.note}", file=sys.stderr, flush=True)
        model = loaded.model
        log.info("brain model: %s", model.name if model else "none")
    brain = Brain(model, config.brain, assets, absent_reason=absent)
    brain.previous_prompt = args.previous
    brain.warm_up()
    phrases = args.phrases or (line.strip() for line in sys.stdin)
    for text in phrases:
        if not text:
            continue
        result = brain.step(Phrase(text, 0.0, 0.0, "end"))
        if not isinstance(result, ImagePrompt):
            log.warning("no prompt for %r (only blocked words)", text)
        elif args.json:
            print(json.dumps(to_json_dict(result), ensure_ascii=False), flush=True)
        else:
            print(result.text, flush=True)
            why = f" ({result.reason})" if result.reason else ""
            log.info("%s in %.0f ms%s", result.source, result.latency_ms, why)
    return EXIT_OK


def server_failure(config: Config) -> str:
    """With a server as brain.model: check it, print each check to stderr (and the fix for a failed one);
    the first failed check as a fallback's reason, "" when all passed (or brain.model is no server)."""
    from voicevibe.doctor.server import server_checks

    rows = server_checks(config.brain)
    for row in rows:
        fix = f" — to fix: {row.fix}" if not row.ok and row.fix else ""
        print(f"[brain] {'ok  ' if row.ok else 'FAIL'} {row.name}: {row.detail}{fix}", file=sys.stderr, flush=True)
    failed = next((row for row in rows if not row.ok), None)
    return f"brain server check failed ({failed.name}: {failed.detail})" if failed else ""


def cmd_replay(args: argparse.Namespace, config: Config) -> int:
    """Re-send a session log's prompts to the OSC targets with their original timing."""
    from voicevibe.osc import OscSender
    from voicevibe.runtime.session import replay

    if not args.speed > 0:
        raise ConfigError(f"--speed {args.speed}: must be above 0 (2 = twice as fast)")
    with OscSender(config.osc, report=lambda item: log.warning("%s", getattr(item, "message", item))) as sender:
        sender.wait_for_lookups(10.0)  # the targets' names first: a command line may wait, the window never does
        count = replay(args.log, sender.send_text, speed=args.speed)
    print(f"replayed {count} prompt(s) from {args.log} to {config.osc.targets}")
    return EXIT_OK


def cmd_devices() -> int:
    """List input devices, or say clearly that there are none."""
    devices = list_input_devices()
    if not devices:
        print("no audio input devices found: plug in a microphone or audio interface "
              "(or use a file: voicevibe run --input FILE)")
        return EXIT_OK
    for d in devices:
        mark = "*" if d.is_default else " "
        api = f"{d.hostapi}, " if d.hostapi else ""
        print(f"{mark} {d.index:3d}  {d.name}  ({api}{d.channels} ch, {d.default_samplerate:.0f} Hz)")
    print(f'the numbers change when devices come and go: name the input, e.g. audio.input = "{devices[0].key}"')
    return EXIT_OK


def cmd_models_download(config: Config) -> int:
    """Prefetch the brain's GGUF and the STT checkpoint into the Hugging Face cache (progress bars on stderr)."""
    from voicevibe.brain.loading import download_brain_model

    try:
        print(f"ok  {download_brain_model(config.brain)}")
    except ModelError as e:  # not fatal: the bundled 270M stands in
        print(f"[brain] {e}", file=sys.stderr, flush=True)
    files = locate_stt(config.stt.model, allow_download=True)
    for path in (files.lm, files.mimi, files.tokenizer):
        print(f"ok  {path}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `voicevibe` console script."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    commands = {"run", "transcribe", "prompt", "replay", "devices", "midi", "models", "doctor", "config",
                "install-launcher", "-h", "--help", "--version"}
    if not argv or argv[0] not in commands:
        argv = ["run", *argv]  # `voicevibe [--input X ...]` starts the show
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(getattr(args, "verbose", 0) + 1, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        if args.command == "devices":
            return cmd_devices()
        if args.command == "install-launcher":
            from voicevibe.launcher import install_launcher

            for path in install_launcher():
                print(f"wrote {path}")
            return EXIT_OK
        config = load(args)
        if args.command == "config":
            print(documented_defaults() if args.defaults else render(config))
            return EXIT_OK
        if args.command == "models":
            return cmd_models_download(config)
        if args.command == "doctor" and args.speed:
            from voicevibe.doctor.speed import main as speed

            return speed(config)
        if args.command == "doctor":
            from voicevibe.doctor.checks import main as doctor

            return doctor(config)
        if args.command == "transcribe":
            return cmd_transcribe(args, config)
        if args.command == "prompt":
            return cmd_prompt(args, config)
        if args.command == "replay":
            return cmd_replay(args, config)
        if args.command == "midi":
            return cmd_midi(config)
        if not args.no_gui and args.script:
            raise ScriptError(f"--script {args.script}: a script runs in the terminal — add --no-gui "
                              "(the window has its own Script mode)")
        if not args.no_gui:
            from voicevibe.gui.run import run_gui

            return run_gui(config, input_spec=args.input, quit_after=args.quit_after)
        return cmd_run(args, config)
    except (ConfigError, AudioError, ModelError, AssetError, ScriptError, SessionLogError) as e:
        print(f"voicevibe: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def render(config: Config) -> str:
    """The effective configuration as TOML."""
    import dataclasses

    lines = []
    for section in dataclasses.fields(config):
        lines.append(f"[{section.name}]")
        for key, value in dataclasses.asdict(getattr(config, section.name)).items():
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
