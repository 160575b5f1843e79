"""Configuration files: the layers read in order, the window's saved settings, the documented defaults.

Precedence, lowest first: defaults in code (config.py), the repo's `config.toml`, the user's
`config.toml` (platformdirs config dir), the settings the window saved (`settings.toml` beside
it), files given with `--config`, then command-line overrides.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

import platformdirs

from voicevibe.config import APP_NAME, REPO_CONFIG, SECTIONS, Config, ConfigError, allowed


def user_config_path() -> Path:
    """The user's hand-edited config file (never written by the app)."""
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def settings_path() -> Path:
    """The settings the window saves (owned by the app, loaded after the user's config.toml)."""
    return Path(platformdirs.user_config_dir(APP_NAME)) / "settings.toml"


def render_value(value: Any) -> str:
    """A scalar setting in TOML syntax."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's string escapes are valid TOML
    return repr(value)


def save_settings(config: Config, changed: Mapping[str, Iterable[str]], path: Path | None = None) -> Path:
    """Write the named keys' current values (e.g. {"dsp": ["gain_db"]}) over the saved settings file."""
    path = path or settings_path()
    saved: dict[str, dict[str, Any]] = read_toml(path) if path.is_file() else {}
    for section, keys in changed.items():
        for key in keys:
            saved.setdefault(section, {})[key] = getattr(getattr(config, section), key)
    merge(Config(), saved, str(path))  # never write what would not load back
    lines = ["# Written by VoiceVibe: the settings changed in the window. Safe to delete."]
    for section, values in saved.items():
        lines += ["", f"[{section}]"] + [f"{k} = {render_value(v)}" for k, v in values.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_toml(path: Path) -> dict[str, Any]:
    """Parse one TOML file, turning every failure into a ConfigError naming the file."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: config file not found") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror}") from e


def merge(config: Config, data: Mapping[str, Any], source: str) -> Config:
    """Apply one layer of settings (a parsed TOML document) on top of `config`."""
    sections = {}
    for name, values in data.items():
        if name not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [{name}]; known sections: "
                              + ", ".join(f"[{s}]" for s in SECTIONS))
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: [{name}] must be a table of settings, got {values!r}")
        current = getattr(config, name)
        known = {f.name for f in dataclasses.fields(current)}
        for key in values:
            if key not in known:
                raise ConfigError(f"{source}: unknown key [{name}] {key}; known keys: "
                                  + ", ".join(sorted(known)))
        try:
            sections[name] = dataclasses.replace(current, **values)
        except ConfigError as e:
            raise ConfigError(f"{source}: [{name}] {e}") from None
    return dataclasses.replace(config, **sections)


def parse_override(text: str) -> dict[str, Any]:
    """Turn `section.key=value` (value in TOML syntax, bare words as strings) into a layer."""
    name, sep, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not key:
        raise ConfigError(f"--set {text!r}: expected SECTION.KEY=VALUE, e.g. dsp.gain_db=6")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return {section: {key: parsed}}


def load_config(files: Iterable[Path] = (), overrides: Iterable[Mapping[str, Any]] = (),
                *, include_defaults_files: bool = True) -> Config:
    """Build the config from the default layers, then `files`, then `overrides`."""
    config = Config()
    layers: list[Path] = []
    if include_defaults_files:
        layers += [p for p in (REPO_CONFIG, user_config_path(), settings_path()) if p.is_file()]
    for path in [*layers, *files]:
        config = merge(config, read_toml(Path(path)), str(path))
    for layer in overrides:
        config = merge(config, layer, "command line")
    return config


CONFIG_HEADER = """\
# VoiceVibe configuration: every key, with its default.
# (Regenerate with `voicevibe config --defaults > config.toml`.)
#
# Precedence, lowest first: the defaults in code (identical to this file), this file,
# your own config.toml (in the platform config dir: ~/.config/voicevibe/config.toml on
# Linux, ~/Library/Application Support/voicevibe/config.toml on macOS), the settings the
# window saves (settings.toml beside it), files given with --config, then
# --set SECTION.KEY=VALUE and the dedicated command-line flags.
# `voicevibe config` prints the effective values. Unknown keys, wrong types and
# out-of-range values stop the start with a message naming the file and the key.
"""


def documented_defaults() -> str:
    """Render every key with its default and documentation: the repo's config.toml."""
    lines = [CONFIG_HEADER]
    for name, cls in SECTIONS.items():
        lines.append(f"[{name}]")
        default = cls()
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            doc = f"{f.metadata['doc']} Allowed: {allowed(f, hints[f.name])}."
            lines += textwrap.wrap(doc, 92, initial_indent="# ", subsequent_indent="# ")
            value = getattr(default, f.name)
            lines.append(f"{f.name} = {render_value(value)}")
        lines.append("")
    return "\n".join(lines)
