"""Config: layering, validation messages, the documented config.toml."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicevibe import config_files as cfg
from voicevibe.config import REPO_CONFIG, Config, ConfigError, DspConfig, SttConfig
from voicevibe.config_files import documented_defaults, load_config, parse_override

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


@pytest.fixture(autouse=True)
def user_dir(tmp_path, monkeypatch):
    """Point the user's config dir at an empty temp folder."""
    monkeypatch.setattr(cfg, "user_config_path", lambda: tmp_path / "user" / "config.toml")
    return tmp_path / "user"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_repo_config_documents_every_key_with_its_default():
    assert REPO_CONFIG.read_text(encoding="utf-8") == documented_defaults(), \
        "config.toml is stale: regenerate with `voicevibe config --defaults > config.toml`"
    parsed = tomllib.loads(REPO_CONFIG.read_text(encoding="utf-8"))
    assert load_config(include_defaults_files=False) == Config()
    for name, section in parsed.items():
        assert section == dataclasses.asdict(getattr(Config(), name))


def test_layers_apply_in_order(tmp_path, user_dir):
    write(user_dir / "config.toml", "[dsp]\ngain_db = 3\ngate_threshold = 0.1\n")
    extra = write(tmp_path / "show.toml", "[dsp]\ngain_db = 6.5\n")
    config = load_config([extra], [parse_override("dsp.agc=false"), {"stt": {"model": "/models/stt"}}])
    assert config.dsp.gain_db == 6.5  # --config beats the user file
    assert config.dsp.gate_threshold == 0.1  # user file beats the defaults
    assert config.dsp.agc is False  # --set beats files
    assert config.stt.model == "/models/stt"
    assert isinstance(config.dsp.gain_db, float)


@pytest.mark.parametrize("text, fragments", [
    ("[dsp]\ngain = 3\n", ["show.toml", "unknown key [dsp] gain", "gain_db"]),
    ("[dps]\ngain_db = 3\n", ["show.toml", "unknown section [dps]", "[dsp]"]),
    ("[dsp]\ngain_db = 99\n", ["show.toml", "[dsp] gain_db = 99", "from -24.0 to 24.0"]),
    ("[dsp]\ngain_db = \"loud\"\n", ["show.toml", "gain_db = 'loud'", "a number"]),
    ("[dsp]\nagc = 1\n", ["show.toml", "agc = 1", "true or false"]),
    ("[audio]\nchannel = 1.5\n", ["show.toml", "channel = 1.5", "an integer"]),
    ("[stt]\ndtype = \"f64\"\n", ["show.toml", "dtype = 'f64'", '"bf16", "f16", "f32"']),
    ("[dsp]\ngain_db = nan\n", ["show.toml", "gain_db = nan", "from -24.0 to 24.0"]),
    ("[stt]\nreset_after_seconds = 300.0\n", ["show.toml", "reset_after_seconds", "max_segment_seconds"]),
    ("dsp = 3\n", ["show.toml", "[dsp] must be a table"]),
    ("[dsp\n", ["show.toml", "not valid TOML"]),
])
def test_bad_values_name_file_key_value_and_range(tmp_path, text, fragments):
    path = write(tmp_path / "show.toml", text)
    with pytest.raises(ConfigError) as err:
        load_config([path])
    for fragment in fragments:
        assert fragment in str(err.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml: config file not found"):
        load_config([tmp_path / "nope.toml"])


def test_override_syntax():
    assert parse_override("dsp.gain_db=6") == {"dsp": {"gain_db": 6}}
    assert parse_override("stt.model = kyutai/stt-1b-en_fr-mlx") == {"stt": {"model": "kyutai/stt-1b-en_fr-mlx"}}
    assert parse_override("dsp.agc=false") == {"dsp": {"agc": False}}
    with pytest.raises(ConfigError, match="SECTION.KEY=VALUE"):
        parse_override("gain_db=6")


def test_replace_validates_like_the_loader():
    with pytest.raises(ConfigError, match="gate_threshold"):
        dataclasses.replace(DspConfig(), gate_threshold=-0.1)
    assert dataclasses.replace(SttConfig(), reset_after_seconds=10, max_segment_seconds=20).max_segment_seconds == 20.0


values = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                   st.text(max_size=20), st.lists(st.integers(), max_size=3))


@settings(max_examples=300, deadline=None)
@given(section=st.sampled_from(["audio", "dsp", "stt", "brain"]),
       key=st.one_of(st.sampled_from(["gain_db", "gate_threshold", "channel", "dtype", "agc", "model",
                                      "reset_after_seconds"]), st.text(max_size=10)),
       value=values)
def test_fuzzed_layers_either_load_or_raise_config_error(section, key, value):
    try:
        config = cfg.merge(Config(), {section: {key: value}}, "fuzz")
    except ConfigError as e:
        assert str(e).startswith("fuzz: ")
        return
    assert getattr(getattr(config, section), key) == value  # accepted values arrive unchanged


def test_window_settings_persist_and_load_after_the_user_config(user_dir, monkeypatch):
    path = user_dir / "settings.toml"
    monkeypatch.setattr(cfg, "settings_path", lambda: path)
    write(user_dir / "config.toml", "[dsp]\ngain_db = 3.0\n[brain]\nvibe = \"from the user file\"\n")
    config = load_config()
    changed = dataclasses.replace(config, dsp=dataclasses.replace(config.dsp, gain_db=-6.5),
                                  brain=dataclasses.replace(config.brain, vibe='néon "rain"\nlate'))
    cfg.save_settings(changed, {"dsp": ["gain_db"]})
    cfg.save_settings(changed, {"brain": ["vibe"]})  # a second save keeps the first key
    again = load_config()
    assert again.dsp.gain_db == -6.5
    assert again.brain.vibe == 'néon "rain"\nlate'
    assert load_config(overrides=[{"dsp": {"gain_db": 1.0}}]).dsp.gain_db == 1.0  # the command line wins


def test_saving_a_bad_setting_writes_nothing(user_dir):
    path = user_dir / "settings.toml"
    bad = object.__new__(DspConfig)  # bypasses validation, as a buggy caller could
    for f in dataclasses.fields(DspConfig):
        object.__setattr__(bad, f.name, f.default)
    object.__setattr__(bad, "gain_db", 99.0)
    with pytest.raises(ConfigError, match="gain_db"):
        cfg.save_settings(dataclasses.replace(Config(), dsp=bad), {"dsp": ["gain_db"]}, path)
    assert not path.exists()
