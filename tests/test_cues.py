"""Show control through the running pipeline: spoken triggers, cues over OSC control in, seeds and
transitions at real receivers (liblo's oscdump; our own OscPeer), the session log and replay.

The transcript is injected where the STT's reader thread delivers it (`Pipeline.gate.put`, the
same Word/PhraseEnd events the STT emits): the test checkpoint's random weights transcribe noise,
so no real words could carry a trigger.
"""

from __future__ import annotations

import json
import socket
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder

from support.osc import dump_lines
from support.shows import drain, until
from support.threads import stage_threads
from voicevibe.config import Config
from voicevibe.config_files import load_config
from voicevibe.events import (
    CueFired,
    FireCue,
    ImagePrompt,
    NewSeed,
    NextCue,
    Panic,
    PhraseDropped,
    PhraseEnd,
    PreviousCue,
    SendPrompt,
    SetTransition,
    Status,
    Word,
)
from voicevibe.runtime.controls import Controls
from voicevibe.runtime.pipeline import Pipeline
from voicevibe.runtime.session import read_log, replay
from voicevibe.testing.peer import OscPeer

SHOW = """
[show]
name = "Night swim"
seed = 1234

[[cue]]
name = "Harbour"
prompt = "ink drawing, a harbour at dusk, lanterns on black water"
seed = 7
triggers = ["harbour"]

[[cue]]
name = "Red moon"
prompt = "a red moon over a silent sea, long exposure"
seed = 77
triggers = ["red moon", "lune d'été"]

[[cue]]
name = "Storm"
phrase = "a storm breaks over the lighthouse"
style = "film-noir"
seed = 555
"""


@pytest.fixture
def show_file(tmp_path: Path) -> Path:
    path = tmp_path / "night-swim.toml"
    path.write_text(textwrap.dedent(SHOW), encoding="utf-8")
    return path


def cue_config(tmp_path: Path, port: int, show_file: Path, **sections: dict) -> Config:
    """No audio, no brain worker (the fallback builder answers phrases), the show, OSC to `port`."""
    layers = [{"stt": {"model": str(tmp_path / "no-model")}, "brain": {"model": "none"},
               "osc": {"targets": f"127.0.0.1:{port}", "preset": "generic", "send_json": False},
               "session": {"log_dir": str(tmp_path / "log")},
               "show": {"file": str(show_file), "trigger_cooldown_seconds": 3.0, "transition_seconds": 0.0}},
              sections]
    return load_config(overrides=layers, include_defaults_files=False)


def started(config: Config, controls_for: Callable[[Config], Controls]) -> Pipeline:
    """A show with no audio input (the transcript comes from the test), on controls over the module's engines
    (one speech worker loaded for all these tests)."""
    pipeline = Pipeline(config, controls=controls_for(config), script=[])
    pipeline.start()
    return pipeline


def words(text: str, t0: float) -> list[Word]:
    """Sentencepiece-like pieces: a leading space opens a word; long words come in two pieces."""
    out: list[Word] = []
    t = t0
    for word in text.split():
        parts = [word[:3], word[3:]] if len(word) > 5 else [word]
        out += [Word((" " if i == 0 else "") + p, 1000 + i, int(t / 0.08), t) for i, p in enumerate(parts)]
        t += 0.3
    return out


def log_lines(pipeline: Pipeline) -> list[dict]:
    return list(read_log(pipeline.log_path))


def test_spoken_triggers_fire_their_cue_once_each_through_the_running_pipeline(tmp_path, show_file, oscdump):
    """On engines of its own: it checks that every thread of the show and of its failed worker ends."""
    port, lines = oscdump
    pipeline = Pipeline(cue_config(tmp_path, port, show_file), script=[])
    pipeline.start()
    english = words("and now the red moon the red moon rises", 0.0)  # the trigger twice in one utterance
    french = words("voici la LUNE D'ETE qui brille", 10.0)  # no accents, capitals: the file says "lune d'été"
    split = words("look at the red", 20.0) + [PhraseEnd(260, 21.0, 0.9)] + words("moon tonight over the water", 21.5)
    batches = [english + [PhraseEnd(40, 3.0, 0.9)], french + [PhraseEnd(160, 12.0, 0.9)],
               split + [PhraseEnd(280, 23.0, 0.9)]]

    def speak() -> None:  # on a thread of its own, as the STT pipe's reader delivers them, a few per block
        def run() -> None:
            for batch in batches:
                for i in range(0, len(batch), 3):
                    pipeline.gate.put(tuple(batch[i:i + 3]))
        reader = threading.Thread(target=run, name="stt-link-test")
        reader.start()
        reader.join(30)
        assert pipeline.wait(30)  # the phrase gate heard them all, and what it sent went out

    received = dump_lines(port, lines, speak)
    assert pipeline.wait(30)
    pipeline.stop()
    events = drain(pipeline.events)
    moon = "a red moon over a silent sea, long exposure"
    prompts = [line for line in received if line.split(" ", 3)[1:3] == ["/prompt", "s"]]
    assert [p.split(" ", 3)[3] for p in prompts].count(f'"{moon}"') == 3
    for index, line in enumerate(received):  # each cue prompt left right after its seed
        if line.endswith(f'"{moon}"'):
            assert received[index - 1].split(" ")[1:] == ["/seed", "i", "77"]
    fired = [e for e in events if isinstance(e, CueFired)]
    assert [(f.number, f.via, f.heard, f.sent) for f in fired] == [
        (2, "voice", "red moon", True), (2, "voice", "lune d ete", True), (2, "voice", "red moon", True)]
    records = log_lines(pipeline)
    cues = [r for r in records if r["type"] == "cue"]
    assert [(r["name"], r["via"], r["heard"], r["seed"]) for r in cues] == [
        ("Red moon", "voice", "red moon", 77), ("Red moon", "voice", "lune d ete", 77),
        ("Red moon", "voice", "red moon", 77)]
    assert all(r["sent_at"] for r in cues)
    dropped = [r["text"] for r in records if r["type"] == "phrase_dropped" and r["why"] == "it fired a cue"]
    assert len(dropped) == 3 and "moon tonight" in dropped[-1]  # the words that fired a cue never reach the brain
    assert [r["phrase"] for r in records if r["type"] == "image_prompt"] == ["look at the red"]
    until(lambda: not stage_threads(), timeout=10)  # the worker's pipe reader ends with its (failed) worker


def test_a_cue_over_osc_control_reaches_oscdump_with_its_seed_then_blends_from_the_previous_prompt(controls_for,
        tmp_path, show_file, oscdump):
    port, lines = oscdump
    config = cue_config(tmp_path, port, show_file, control={"enabled": True, "port": 0},
                        show={"transition_seconds": 1.0, "blend_rate_hz": 10.0})
    pipeline = started(config, controls_for)
    host, control_port = pipeline.control_server.address

    def send() -> None:
        pipeline.apply(SendPrompt("a quiet grey sea at dawn"))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
            message = OscMessageBuilder("/voicevibe/cue")
            message.add_arg("HARBOUR")  # by name, any case
            out.sendto(message.build().dgram, (host, control_port))
        deadline = time.monotonic() + 10
        while pipeline.osc._ramp.steps_sent < 10 and time.monotonic() < deadline:
            time.sleep(0.05)

    received = dump_lines(port, lines, send)
    pipeline.stop()
    harbour = "ink drawing, a harbour at dusk, lanterns on black water"
    addresses = [line.split(" ", 3)[1:] for line in received]
    at = addresses.index(["/prompt", "s", f'"{harbour}"'])
    assert addresses[at - 1] == ["/seed", "i", "7"]  # the cue's own seed, just before its prompt
    assert addresses[0] == ["/seed", "i", "1234"]  # the show's first seed went with the typed prompt
    blends = [(line.split(" ")[0], json.loads(line.split(" ", 3)[3][1:-1])) for line in received
              if line.split(" ")[1] == "/prompt_list"]
    assert blends[0][1] == [["a quiet grey sea at dawn", 1.0]]  # the first prompt: nothing to blend from
    ramp = blends[1:]
    assert len(ramp) == 10
    for _, pairs in ramp:
        assert [text for text, _ in pairs] == ["a quiet grey sea at dawn", harbour]
        assert abs(sum(w for _, w in pairs) - 1.0) < 1e-9
    new = [pairs[1][1] for _, pairs in ramp]
    assert all(b > a for a, b in zip(new, new[1:])) and new[-1] == 1.0 and new[0] == pytest.approx(0.1)
    stamps = [int(t.split(".")[0], 16) + int(t.split(".")[1], 16) / 2**32 for t, _ in ramp]
    assert stamps == sorted(stamps) and 0.8 < stamps[-1] - stamps[0] < 3.0  # spread over the transition


def test_scope_gets_transition_steps_before_each_prompt_and_a_cut_for_panic(controls_for, tmp_path, show_file):
    with OscPeer() as peer:
        config = cue_config(tmp_path, peer.port, show_file, osc={"preset": "scope"},
                            show={"transition_seconds": 2.0, "scope_steps_per_second": 4.0})
        pipeline = started(config, controls_for)
        pipeline.apply(FireCue(1, via="test"))
        pipeline.apply(SetTransition(0.5))
        pipeline.apply(SendPrompt("a field of sunflowers"))
        pipeline.apply(Panic(True))
        got = peer.wait_for("/scope/prompt", 3)
        pipeline.stop()
        sent = [(m.address, m.params) for m in peer.messages]
    assert sent == [("/scope/transition_steps", [8]), ("/scope/prompt", [got[0].params[0]]),
                    ("/scope/transition_steps", [2]), ("/scope/prompt", ["a field of sunflowers"]),
                    ("/scope/transition_steps", [0]), ("/scope/prompt", [config.osc.panic_prompt])]
    assert got[0].params[0].startswith("ink drawing, a harbour")  # no seed, no blend: Scope has neither over OSC


def test_the_vocevibe_preset_is_unchanged_by_cues(controls_for, tmp_path, show_file):
    with OscPeer() as peer:
        pipeline = started(cue_config(tmp_path, peer.port, show_file, osc={"preset": "vocevibe"},
                                      show={"transition_seconds": 2.0}), controls_for)
        pipeline.apply(SendPrompt("a quiet grey sea"))
        pipeline.apply(FireCue("red moon", via="test"))
        peer.wait_for("/visual/prompt", 2)
        time.sleep(0.3)  # a ramp, if one were (wrongly) running, would have sent by now
        pipeline.stop()
        addresses = {m.address for m in peer.messages}
    assert addresses == {"/visual/prompt", "/visual/style", "/visual/mood"}


def test_a_phrase_cue_goes_through_the_brain_in_its_style_with_its_seed(controls_for, tmp_path, show_file):
    with OscPeer() as peer:
        pipeline = started(cue_config(tmp_path, peer.port, show_file), controls_for)
        pipeline.apply(FireCue(3, via="test"))
        got = peer.wait_for("/prompt", 1)
        assert pipeline.wait(30)
        pipeline.stop()
        seeds = peer.on("/seed")
    events = drain(pipeline.events)
    prompt = next(e for e in events if isinstance(e, ImagePrompt))
    assert prompt.phrase == "a storm breaks over the lighthouse" and prompt.style == "film-noir"
    assert got[0].params == [prompt.text] and "lighthouse" in prompt.text
    assert seeds[0].params == [555]  # the cue's seed went with the brain's prompt
    fired = next(e for e in events if isinstance(e, CueFired))
    assert fired.phrase and not fired.sent and fired.seed == 555


def test_next_previous_new_seed_and_a_missing_cue(controls_for, tmp_path, show_file):
    with OscPeer() as peer:
        pipeline = started(cue_config(tmp_path, peer.port, show_file), controls_for)
        for command in (NextCue(via="t"), NextCue(via="t"), PreviousCue(via="t"), FireCue(9, via="t"),
                        FireCue("nope", via="t"), NewSeed()):
            pipeline.apply(command)
        peer.wait_for("/prompt", 3)
        seeds = peer.wait_for("/seed", 4)
        pipeline.stop()
    events = drain(pipeline.events)
    assert [e.number for e in events if isinstance(e, CueFired)] == [1, 2, 1]
    refused = [e.message for e in events if isinstance(e, Status) and e.stage == "show"]
    assert any("no cue 9" in m and "cues 1-3" in m for m in refused) and any("'nope'" in m for m in refused)
    assert [s.params[0] for s in seeds[:3]] == [7, 77, 7] and seeds[3].params[0] not in (7, 77)
    assert pipeline.cues.next_number == 2


def test_phrase_hygiene_keeps_fillers_and_short_phrases_from_the_brain(controls_for, tmp_path, show_file):
    with OscPeer() as peer:
        # Each pause closes a phrase (phrase_min_chars 1), so each one meets the hygiene alone.
        pipeline = started(cue_config(tmp_path, peer.port, show_file, brain={"phrase_min_chars": 1}), controls_for)
        for text, t in (("euh", 0.0), ("merci beaucoup", 2.0), ("lighthouse", 4.0),
                        ("the lighthouse glows in the fog", 6.0)):
            pipeline.gate.put((*words(text, t), PhraseEnd(int(t / 0.08) + 20, t + 1.5, 0.9)))
        assert pipeline.wait(30)
        pipeline.stop()
    events = drain(pipeline.events)
    dropped = [(e.text, e.why) for e in events if isinstance(e, PhraseDropped)]
    assert [text for text, _ in dropped] == ["euh", "merci beaucoup", "lighthouse"]
    assert [e.phrase for e in events if isinstance(e, ImagePrompt)] == ["the lighthouse glows in the fog"]


def test_a_fired_cue_is_replayed_but_a_phrase_cue_is_not(controls_for, tmp_path, show_file):
    with OscPeer() as peer:
        pipeline = started(cue_config(tmp_path, peer.port, show_file), controls_for)
        pipeline.apply(FireCue(2, via="test"))
        pipeline.apply(FireCue(3, via="test"))
        assert pipeline.wait(30)
        pipeline.stop()
    sent: list[str] = []
    assert replay(pipeline.log_path, sent.append, sleep=lambda s: None) == 2
    assert sent[0] == "a red moon over a silent sea, long exposure"
    assert "storm" in sent[1] and sent[1] != "a storm breaks over the lighthouse"  # the brain's prompt, not the phrase
