"""Show files, spoken triggers, phrase hygiene, seeds, blends and MIDI mapping: the pure parts.

(The running pipeline, oscdump and the CLI are in test_cues.py; real MIDI ports in test_midi.py.)
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import mido
import pytest

from voicevibe.config import ConfigError, OscConfig
from voicevibe.config_files import load_config
from voicevibe.events import (
    FireCue,
    Freeze,
    NewSeed,
    NextCue,
    Panic,
    PhraseEnd,
    SeedLock,
    SetGain,
    SetGate,
    SetRate,
    SetTransition,
    Word,
)
from voicevibe.midi.mapping import MappingError, format_mapping, parse_mapping
from voicevibe.midi.router import Learned, MidiRouter
from voicevibe.show.file import ShowError, load_show
from voicevibe.show.transitions import SeedState, blend_datagram, blend_json, blend_weights, transition_steps
from voicevibe.show.triggers import Trigger, TriggerMatcher, normalize_words, parse_word_list, phrase_problem

ROOT = Path(__file__).resolve().parent.parent

SHOW = """
[show]
name = "Night swim"
transition_seconds = 3
seed = 1234

[[cue]]
name = "Harbour"
prompt = "ink drawing, a harbour at dusk, lanterns on black water"
seed = 7
triggers = ["harbour", "le port"]

[[cue]]
name = "Lumière d'été"
prompt = "a wheat field in summer light"
triggers = ["lumière d'été"]

[[cue]]
name = "Storm"
phrase = "a storm breaks over the sea"
style = "film-noir"
vibe = "cold"
key = "s"
"""


def write(tmp_path: Path, text: str, name: str = "show.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_show_file_loads_with_defaults_keys_and_lookups(tmp_path):
    show = load_show(write(tmp_path, SHOW))
    assert show.name == "Night swim" and show.transition_seconds == 3.0 and show.seed == 1234
    assert [c.name for c in show.cues] == ["Harbour", "Lumière d'été", "Storm"]
    assert [c.key for c in show.cues] == ["1", "2", "s"]
    assert show.cues[0].prompt.startswith("ink") and show.cues[2].phrase and not show.cues[2].prompt
    assert show.cues[2].style == "film-noir" and show.cues[2].vibe == "cold" and show.cues[0].vibe is None
    assert show.find(2) is show.cues[1] and show.find("LUMIERE D'ETE") is show.cues[1] and show.find(4) is None
    assert show.by_key("s") is show.cues[2]


def test_the_example_show_loads_with_the_real_style_presets():
    from voicevibe.brain.assets import load_assets

    show = load_show(ROOT / "examples" / "night-swim.toml", styles=load_assets("").styles)
    assert len(show.cues) == 5 and show.by_key("b").name == "Black" and show.find("storm").phrase


BAD_SHOWS = [  # (what is wrong, file text, words the error must name)
    ("unknown cue key", '[[cue]]\nname = "A"\nprompt = "x"\n[[cue]]\nname = "Storm"\npromt = "y"\n',
     ['cue 2 "Storm"', "promt"]),
    ("seed as a string", '[[cue]]\nname = "Harbour"\nprompt = "x"\nseed = "7"\n', ['cue 1 "Harbour"', "seed"]),
    ("duplicate cue", '[[cue]]\nname = "Sea"\nprompt = "x"\n[[cue]]\nname = "sea"\nprompt = "y"\n',
     ['cue 2 "sea"', "name", "cue 1"]),
    ("both prompt and phrase", '[[cue]]\nname = "Dawn"\nprompt = "x"\nphrase = "y"\n', ['cue 1 "Dawn"', "phrase"]),
    ("neither", '[[cue]]\nname = "Dawn"\nstyle = "cinematic"\n', ['cue 1 "Dawn"', "prompt"]),
    ("reserved key", '[[cue]]\nname = "Dawn"\nprompt = "x"\nkey = "f"\n', ['cue 1 "Dawn"', "key"]),
    ("trigger not a string", '[[cue]]\nname = "Dawn"\nprompt = "x"\ntriggers = ["sun", 3]\n',
     ['cue 1 "Dawn"', "triggers"]),
    ("trigger used twice", '[[cue]]\nname = "A"\nprompt = "x"\ntriggers = ["Moon"]\n'
     '[[cue]]\nname = "B"\nprompt = "y"\ntriggers = ["moon"]\n', ['cue 2 "B"', "triggers", "moon"]),
    ("unknown show key", '[show]\ntempo = 120\n[[cue]]\nname = "A"\nprompt = "x"\n', ["[show]", "tempo"]),
    ("transition out of range", '[show]\ntransition_seconds = -1\n[[cue]]\nname = "A"\nprompt = "x"\n',
     ["[show]", "transition_seconds"]),
    ("no cues", '[show]\nname = "empty"\n', ["no cues"]),
    ("unknown table", '[cues]\nname = "A"\n', ["[cues]"]),
    ("not TOML", '[[cue]\nname = "A"\n', ["not valid TOML"]),
]


@pytest.mark.parametrize("what, text, named", BAD_SHOWS, ids=[b[0] for b in BAD_SHOWS])
def test_a_bad_show_file_names_the_file_the_cue_and_the_key(tmp_path, what, text, named):
    path = write(tmp_path, text)
    with pytest.raises(ShowError) as error:
        load_show(path)
    message = str(error.value)
    assert str(path) in message
    for word in named:
        assert word in message, f"{what}: {message!r} lacks {word!r}"


def test_an_unknown_style_is_named_when_the_styles_are_known(tmp_path):
    path = write(tmp_path, '[[cue]]\nname = "A"\nprompt = "x"\nstyle = "vaporwave-ish"\n')
    with pytest.raises(ShowError, match=r'cue 1 "A": style = .vaporwave-ish.: unknown style preset; known: cine'):
        load_show(path, styles={"cinematic", "film-noir"})


@pytest.mark.parametrize("text, words", [
    ('[[cue]]\nname = "Sea"\nprompt = "x"\nseed = 7.5\n', ['cue 1 "Sea"', "seed"]),
    ('[[cue]]\nname = "Sea"\nprompt = "x"\nkey = "s"\n[[cue]]\nname = "Fog"\nprompt = "y"\nkey = "S"\n',
     ['cue 2 "Fog"', "key"]),
    ('[[cue]]\nname = "Sea"\nprompt = "x"\ncolour = "blue"\n', ['cue 1 "Sea"', "colour"]),
])
def test_the_cli_exits_2_on_a_bad_show_and_says_which_cue_and_key(tmp_path, text, words):
    path = write(tmp_path, text)
    done = subprocess.run([sys.executable, "-m", "voicevibe", "run", "--no-gui", "--show", str(path),
                           "--script", str(write(tmp_path, "a line\n", "script.txt")), "--set", 'brain.model="none"'],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    for word in words:
        assert word in done.stderr


# ---- spoken triggers -------------------------------------------------------------------------------

def pieces(text: str, t0: float, step: float = 0.3) -> list[Word]:
    """A transcript as the STT emits it: one Word per word here (a leading space opens a word)."""
    return [Word(" " + w, 0, 0, t0 + i * step) for i, w in enumerate(text.split())]


def fired(matcher: TriggerMatcher, events: list) -> list[int]:
    return [hit.cue for e in events if (hit := matcher.step(e)) is not None]


def test_words_are_compared_without_case_or_accents():
    assert normalize_words("Lumière D'ÉTÉ") == normalize_words("lumiere d'ete") == ("lumiere", "d", "ete")
    assert normalize_words("lumie\u0300re") == ("lumiere",)  # decomposed accent
    assert normalize_words("Cœur") == ("coeur",)


def test_a_trigger_fires_in_english_in_french_and_across_a_phrase_end_once_each():
    matcher = TriggerMatcher([Trigger(2, ("red", "moon"), "red moon"), Trigger(2, ("lune", "rousse"), "lune rousse")],
                             cooldown_seconds=3.0)
    english = pieces("look the red moon the red moon rises", 0.0)  # said twice in one utterance
    french = pieces("voici la LUNE Roussé ce soir", 10.0)
    split = pieces("and then the red", 20.0) + [PhraseEnd(0, 21.5, 0.9)] + pieces("moon tonight", 22.0)
    assert fired(matcher, english + [PhraseEnd(0, 3, 0.9)]) == [2]
    assert fired(matcher, french + [PhraseEnd(0, 12, 0.9)]) == [2]
    assert fired(matcher, split + [PhraseEnd(0, 23, 0.9)]) == [2]


def test_a_trigger_matches_whole_words_and_a_word_split_in_pieces():
    matcher = TriggerMatcher([Trigger(1, ("mer",), "mer")], cooldown_seconds=0.0)
    assert fired(matcher, pieces("merci beaucoup la mermaid", 0.0) + [PhraseEnd(0, 2, 1)]) == []
    spelled = [Word(" la", 0, 0, 3.0), Word(" m", 0, 0, 3.2), Word("er", 0, 0, 3.3), Word(".", 0, 0, 3.4),
               PhraseEnd(0, 3.5, 1.0)]
    assert fired(matcher, spelled) == [1]


def test_the_cooldown_holds_a_cue_back_then_lets_it_fire_again():
    matcher = TriggerMatcher([Trigger(3, ("storm",), "storm")], cooldown_seconds=5.0)
    assert fired(matcher, pieces("storm", 0.0) + [PhraseEnd(0, 0.5, 1)]) == [3]
    assert fired(matcher, pieces("storm again", 2.0) + [PhraseEnd(0, 3, 1)]) == []
    assert fired(matcher, pieces("storm", 6.0) + [PhraseEnd(0, 6.5, 1)]) == [3]


def test_phrase_hygiene_drops_fillers_and_short_phrases_only():
    ignore = parse_word_list("euh, um, merci, thank you, merci beaucoup")
    assert phrase_problem("Euh... um", ignore, 2) == "only fillers (show.ignore_phrases)"
    assert phrase_problem("Merci beaucoup !", ignore, 2) == "only fillers (show.ignore_phrases)"
    assert phrase_problem("thank you", ignore, 1) is not None
    assert "under show.min_phrase_words" in phrase_problem("lighthouse", ignore, 2)
    assert phrase_problem("euh la lune", ignore, 2) is None
    assert phrase_problem("thank you for the sea", ignore, 2) is None


# ---- seeds and blends ------------------------------------------------------------------------------

def test_seed_policy_lock_roll_fix_and_pin():
    seeds = SeedState(42, locked=True, rng=random.Random(0))
    assert [seeds.for_prompt() for _ in range(3)] == [42, 42, 42]
    assert seeds.for_prompt(7) == 7 and seeds.for_prompt() == 7  # a cue's seed stays while locked
    rolled = seeds.roll()
    assert rolled != 7 and seeds.for_prompt() == rolled
    seeds.lock(False)
    fresh = [seeds.for_prompt() for _ in range(3)]
    assert len(set(fresh)) == 3 and all(0 <= s < 2**31 for s in fresh)
    seeds.pin(99)
    assert seeds.for_prompt() == 99 and seeds.for_prompt() != 99


def test_blend_weights_ramp_monotonically_and_always_sum_to_one():
    steps = 17
    lists = [json.loads(blend_json("old prompt", "new prompt", blend_weights(k, steps)[1], 1400))
             for k in range(1, steps + 1)]
    new_weights = [pairs[1][1] for pairs in lists]
    assert all(b > a for a, b in zip(new_weights, new_weights[1:])) and new_weights[-1] == 1.0
    assert all(abs(sum(w for _, w in pairs) - 1.0) < 1e-9 for pairs in lists)
    assert [p[0] for p in lists[0]] == ["old prompt", "new prompt"]
    assert json.loads(blend_json("same", "same", 1.0, 1400)) == [["same", 1.0]]


def test_a_blend_of_long_prompts_stays_valid_json_within_one_datagram():
    old, new = "é" * 900, "a sunset over " * 80
    config = OscConfig(max_datagram_bytes=600)
    dgram = blend_datagram("/prompt_list", old, new, 0.25, config)
    assert len(dgram) <= 600
    text = dgram[dgram.index(b"[["):].rstrip(b"\0").decode("utf-8")
    pairs = json.loads(text)
    assert [w for _, w in pairs] == [0.75, 0.25] and pairs[0][0].startswith("é") and pairs[1][0].startswith("a sun")


def test_scope_transition_steps_follow_the_seconds():
    assert transition_steps(2.0, 4.0) == 8 and transition_steps(0.0, 4.0) == 0 and transition_steps(0.1, 4.0) == 0


# ---- MIDI mapping ----------------------------------------------------------------------------------

def test_a_mapping_reads_back_and_bad_entries_are_named():
    text = "gain=cc:1:7, panic=note:10:36, cue3=note:10:40, next=cc:2:64"
    assert format_mapping(parse_mapping(text)) == text
    for bad, named in [("volume=cc:1:7", "volume"), ("gain=note:1:7", "needs a cc"), ("gain=cc:17:7", "1-16"),
                       ("gain=cc:1:7, gain=cc:1:8", "twice"), ("panic=pad:1:2", "panic=pad")]:
        with pytest.raises(MappingError, match=named):
            parse_mapping(bad)
    with pytest.raises(ConfigError, match=r"\[midi\] mapping = .*volume"):
        load_config(overrides=[{"midi": {"mapping": "volume=cc:1:7"}}], include_defaults_files=False)


def test_the_router_scales_knobs_toggles_pads_and_counts_what_it_ignores():
    flags = {Panic: False}
    router = MidiRouter(parse_mapping("gain=cc:1:7, gate=cc:1:8, rate=cc:1:9, panic=note:10:36, next=cc:1:64, "
                                      "cue2=note:10:38, transition=cc:1:10"), state=lambda kind: flags.get(kind, False))
    cc = lambda n, v, ch=0: mido.Message("control_change", channel=ch, control=n, value=v)  # noqa: E731
    note = lambda n, v: mido.Message("note_on", channel=9, note=n, velocity=v)  # noqa: E731
    assert router.handle(cc(7, 127)) == SetGain(24.0) and router.handle(cc(7, 0)) == SetGain(-24.0)
    assert router.handle(cc(8, 127)) == SetGate(0.3) and router.handle(cc(9, 10)) == SetRate(5.0)
    assert router.handle(cc(10, 127)) == SetTransition(10.0)
    assert router.handle(note(36, 100)) == Panic(True)
    assert router.handle(note(36, 0)) is None  # velocity 0: a release
    flags[Panic] = True
    assert router.handle(note(36, 90)) == Panic(False)
    assert router.handle(cc(64, 127)) == NextCue(via="midi") and router.handle(cc(64, 100)) is None  # still held
    assert router.handle(cc(64, 0)) is None and router.handle(cc(64, 127)) == NextCue(via="midi")
    assert router.handle(note(38, 64)) == FireCue(2, via="midi")
    handled = router.handled
    assert router.handle(cc(7, 64, ch=3)) is None  # another channel: unmapped
    assert router.handle(mido.Message("pitchwheel", pitch=100)) is None
    assert router.handle(mido.Message("clock")) is None
    assert router.unmapped == 3 and router.handled == handled
    for junk in (object(), None, type("M", (), {"type": "note_on", "channel": 99, "note": 1, "velocity": 1})(),
                 type("M", (), {"type": "control_change", "channel": 0, "control": 7, "value": 300})()):
        assert router.handle(junk) is None
    assert router.malformed == 4


def test_learn_binds_the_next_cc_or_pad_and_moves_a_used_source():
    router = MidiRouter(parse_mapping("gain=cc:1:7"))
    router.learn("gate")
    assert router.handle(mido.Message("note_on", note=1, velocity=100)) is None  # a pad cannot drive a knob
    learned = router.handle(mido.Message("control_change", channel=0, control=7, value=40))
    assert isinstance(learned, Learned) and learned.mapping == "gate=cc:1:7"  # gain lost its knob to gate
    assert router.handle(mido.Message("control_change", channel=0, control=7, value=127)) == SetGate(0.3)
    router.learn("new_seed")
    learned = router.handle(mido.Message("note_on", channel=9, note=44, velocity=80))
    assert learned.mapping == "gate=cc:1:7, new_seed=note:10:44"
    assert router.handle(mido.Message("note_on", channel=9, note=44, velocity=80)) == NewSeed()
    assert router.handle(mido.Message("note_on", channel=0, note=1, velocity=1)) is None
    assert SeedLock(True) != Freeze(True)  # distinct commands, same shape


# ---- OSC control in: the show's addresses -----------------------------------------------------------

def test_the_show_control_addresses_parse_to_commands_and_bad_ones_are_named():
    from voicevibe.control import ControlError, command_from
    from voicevibe.events import PreviousCue, SetTransition

    assert command_from("/voicevibe/cue", [2]) == FireCue(2, via="osc")
    assert command_from("/voicevibe/cue", [3.0]) == FireCue(3, via="osc")  # TouchOSC sends floats
    assert command_from("/voicevibe/cue", ["  Red   moon "]) == FireCue("Red moon", via="osc")
    assert command_from("/voicevibe/cue/next", []) == NextCue(via="osc")
    assert command_from("/voicevibe/cue/previous", [1.0]) == PreviousCue(via="osc")
    assert command_from("/voicevibe/cue/next", [0]) is None  # a button's release
    assert command_from("/voicevibe/seed/lock", [True]) == SeedLock(True)
    assert command_from("/voicevibe/seed/new", []) == NewSeed()
    assert command_from("/voicevibe/transition", [2.5]) == SetTransition(2.5)
    for address, args, named in [("/voicevibe/cue", [0], "1 to 99"), ("/voicevibe/cue", [2.5], "1 to 99"),
                                 ("/voicevibe/cue", [""], "non-empty"), ("/voicevibe/transition", [31], "0 to 30"),
                                 ("/voicevibe/seed/lock", ["yes"], "flag"), ("/voicevibe/cue/nxt", [], "cue/next")]:
        with pytest.raises(ControlError, match=named):
            command_from(address, args)
