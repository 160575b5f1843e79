"""The window's brain-source row: which brain answers (a local model or a server) and the switch to the other.

The switch swaps brain.model and brain.switch_model; the window then reconfigures the engines,
which restart only the brain worker (the speech engine keeps its model), even mid-show: the
fallback builder answers while the other brain loads or connects.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import customtkinter as ctk

from voicevibe.config import BrainConfig, is_server_url
from voicevibe.gui.widgets import FONT, FONT_SMALL, GREY
from voicevibe.brain.llama import BUNDLED, NO_MODEL

if TYPE_CHECKING:
    from voicevibe.gui.window import PerformanceWindow

PAD = {"padx": 10, "pady": 3}
NO_SWITCH = "set brain.switch_model to a server URL (or a local model) to switch brains here"


def describe_brain(config: BrainConfig) -> str:
    """Which brain a config runs, in the operator's words: "server: <model> @ <url>" or "local: <file>"."""
    from voicevibe.brain.server import api_base  # httpx is imported only by a window that shows a server

    model = config.model
    if model == NO_MODEL:
        return "none: fallback prompts only"
    if is_server_url(model):
        return f"server: {config.server_model or '(the model it lists)'} @ {api_base(model)}"
    if model == BUNDLED:
        return "local: Gemma 3 270M (bundled)"
    path = Path(model).expanduser()
    return f"local: {path.name}" if path.suffix == ".gguf" else f"local: {model}/{config.model_file}"


def switched(config: BrainConfig) -> BrainConfig:
    """The brain config with brain.model and brain.switch_model swapped (unchanged without a switch_model)."""
    if not config.switch_model:
        return config
    return dataclasses.replace(config, model=config.switch_model, switch_model=config.model)


def brain_source_row(w: PerformanceWindow, parent: Any, ui: SimpleNamespace) -> None:
    """The "In use" label and the switch button, under the Brain title."""
    ui.brain_source = ctk.CTkLabel(parent, text="", font=FONT_SMALL, anchor="w", wraplength=600, justify="left")
    ui.brain_source.pack(fill="x", padx=10)
    ui.brain_switch = ctk.CTkButton(parent, text="", font=FONT, fg_color=GREY, command=w.switch_brain)
    ui.brain_switch.pack(fill="x", **PAD)
    show_brain_source(ui, w.config.brain)


def show_brain_source(ui: SimpleNamespace, config: BrainConfig) -> None:
    """Show the brain in use and what the switch would change to."""
    ui.brain_source.configure(text=f"In use: {describe_brain(config)}")
    if config.switch_model:
        ui.brain_switch.configure(text=f"Switch to {describe_brain(switched(config))}", state="normal")
    else:
        ui.brain_switch.configure(text=NO_SWITCH, state="disabled")
