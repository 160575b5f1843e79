"""The window's show panel under Xvfb: keys 1-9 (xdotool and Tk events) fire cues, the grid highlights
the next cue, clicker keys, typing is not a cue, seeds and a bad show file; OSC to a local peer.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.fakes import RecordingControls, RecordingPipeline, started
from support.gui import pump, window_for
from voicevibe.config_files import load_config
from voicevibe.events import FireCue, NextCue
from voicevibe.gui.cues import CUE_COLOUR, LAST_COLOUR, NEXT_COLOUR
from voicevibe.testing.peer import OscPeer

SHOW = """
[show]
name = "Rehearsal"
seed = 500

[[cue]]
name = "Harbour"
prompt = "a harbour at dusk"
seed = 7

[[cue]]
name = "Moon"
prompt = "a red moon"

[[cue]]
name = "Storm"
prompt = "a storm over the sea"
key = "s"
"""


@pytest.fixture
def show_file(tmp_path: Path) -> Path:
    path = tmp_path / "rehearsal.toml"
    path.write_text(SHOW, encoding="utf-8")
    return path


def prompts(peer: OscPeer) -> list[str]:
    return [m.params[0] for m in peer.on("/prompt")]


def window(peer: OscPeer, show_file: Path, tmp_path: Path, guard: list[str]):
    config = load_config(overrides=[{"osc": {"targets": f"127.0.0.1:{peer.port}", "preset": "generic"},
                                     "show": {"file": str(show_file), "transition_seconds": 0.0}}],
                         include_defaults_files=False)
    return window_for(config, guard, pipeline_factory=RecordingPipeline, controls=RecordingControls(config),
                      settings_file=tmp_path / "settings.toml")


def colours(w) -> list[str]:
    return [b.cget("fg_color") for b in w.cues.buttons]


def test_keys_fire_cues_and_the_grid_highlights_the_next_one(peer, show_file, tmp_path, display, guard):
    with window(peer, show_file, tmp_path, guard) as w:
        assert [b.cget("text") for b in w.cues.buttons] == ["[1] Harbour", "[2] Moon", "[s] Storm"]
        assert colours(w) == [NEXT_COLOUR, CUE_COLOUR, CUE_COLOUR] and w.cues.highlighted() == 1
        w.root.focus_force()
        pump(w.root)
        subprocess.run(["xdotool", "key", "--window", str(w.root.winfo_id()), "2"], check=True, timeout=10)
        pump(w.root, lambda: prompts(peer) == ["a red moon"])
        pump(w.root, lambda: colours(w) == [CUE_COLOUR, LAST_COLOUR, NEXT_COLOUR])
        w.root.event_generate("<Key-1>")
        pump(w.root, lambda: prompts(peer)[-1:] == ["a harbour at dusk"])
        pump(w.root, lambda: w.cues.highlighted() == 2)
        w.root.event_generate("<Key-s>")
        pump(w.root, lambda: prompts(peer)[-1:] == ["a storm over the sea"])
        pump(w.root, lambda: w.cues.highlighted() is None)  # the last cue: nothing next
        w.root.event_generate("<Key-Prior>")  # a clicker's "back": the cue before the last one fired
        pump(w.root, lambda: prompts(peer)[-1:] == ["a red moon"])
        pump(w.root, lambda: w.cues.highlighted() == 3)
        w.root.event_generate("<Key-9>")  # no ninth cue: nothing sent, the operator is told
        pump(w.root, lambda: "no cue 9" in w.ui.message.cget("text"))
        seeds = [m.params[0] for m in peer.on("/seed")]
        assert seeds == [500, 7, 7, 7]  # locked: a cue's seed stays until another one or "new seed"
        assert [(p.text, d.cget("text").split(" · ")[1]) for p, d in w.ui.prompts.entries][-1] == ("a red moon", "key")


def test_typing_a_digit_is_not_a_cue_and_keys_reach_the_running_show(peer, show_file, tmp_path, display,
                                                                     guard):
    with window(peer, show_file, tmp_path, guard) as w:
        w.ui.manual.focus_force()
        pump(w.root)
        w.ui.manual._entry.event_generate("<Key-1>")
        pump(w.root)
        assert prompts(peer) == []
        pipeline = started(w)
        w.root.focus_force()
        pump(w.root)
        w.root.event_generate("<Key-3>")
        w.root.event_generate("<Key-Next>")
        assert w.controls.commands == [FireCue(3, via="key"), NextCue(via="key")]
        assert pipeline.kwargs["controls"] is w.controls


def test_seed_lock_new_seed_transition_and_a_bad_show_file(peer, show_file, tmp_path, display, guard):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[cue]]\nname = "Fog"\nprompt = "fog"\nsede = 3\n', encoding="utf-8")
    with window(peer, show_file, tmp_path, guard) as w:
        assert w.cues.lock.get() == 1 and w.cues.seed.cget("text") == "seed 500"
        w.cues.lock.toggle()  # seed lock off: a new seed with each prompt
        w.screen.send_manual("a field of sunflowers")
        w.screen.send_manual("a field of sunflowers")
        pump(w.root, lambda: len(peer.on("/seed")) == 2)
        first, second = (m.params[0] for m in peer.on("/seed"))
        assert first != second and 500 not in (first, second)
        w.cues.transition.set(2.5)
        assert w.controls.osc.transition_seconds == 2.5
        assert not w.cues.load(str(bad))
        assert f'{bad}: cue 1 "Fog": unknown key \'sede\'' in w.ui.message.cget("text")
        assert len(w.cues.buttons) == 3  # the loaded show stays
        w.save_settings()
    saved = (tmp_path / "settings.toml").read_text(encoding="utf-8")
    assert "seed_lock = false" in saved and "transition_seconds = 2.5" in saved


def test_the_midi_mapping_is_shown_editable_and_saved(peer, show_file, tmp_path, display, guard):
    with window(peer, show_file, tmp_path, guard) as w:
        assert w.midi.bindings["panic"].cget("text") == "-"
        w.midi.mapping.delete(0, "end")
        w.midi.mapping.insert(0, "panic=note:10:36, cue1=cc:1:20")
        w.midi.apply_mapping()
        assert w.midi.bindings["panic"].cget("text") == "note:10:36"
        assert w.midi.bindings["cue1"].cget("text") == "cc:1:20"
        w.midi.mapping.delete(0, "end")
        w.midi.mapping.insert(0, "volume=cc:1:7")
        w.midi.apply_mapping()
        assert "MIDI mapping not changed" in w.ui.message.cget("text") and "volume" in w.ui.message.cget("text")
        assert w.midi.bindings["panic"].cget("text") == "note:10:36"
        w.save_settings()
    saved = load_config([tmp_path / "settings.toml"], include_defaults_files=False)
    assert saved.midi.mapping == "panic=note:10:36, cue1=cc:1:20"
