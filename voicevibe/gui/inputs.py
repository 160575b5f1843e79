"""The window's Input panel: a microphone, a rehearsal file or a script; a typed phrase for the brain; Start.

`selected()` gives what the next show listens to: a microphone by its name and host API (`InputDevice.key`),
which the window saves as audio.input, never by its index (macOS renumbers devices when AirPods appear).
A typed phrase (Say, or Return in its box) goes to the brain at any time, show running or not, as `SayText`.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from pathlib import Path
from tkinter import filedialog

import customtkinter as ctk

from voicevibe.audio import AudioError, InputDevice, list_input_devices, rescan_devices
from voicevibe.events import SayText
from voicevibe.gui.host import WindowHost
from voicevibe.gui.widgets import AMBER, FONT, FONT_BIG_BUTTON, FONT_SMALL, GREEN, GREY, RED, title

PAD = {"padx": 10, "pady": 3}
NO_DEVICE = "(no input device)"
SEGMENT_BACK = "#2b2b2b"


class InputPanel:
    """Microphone / File / Script, the device picker, the rehearsal file, the script, Say and Start."""

    def __init__(self, w: WindowHost, parent: tk.Misc, *, on_start: Callable[[], None],
                 can_rescan: Callable[[], bool]) -> None:
        self.w = w
        self.can_rescan = can_rescan  # PortAudio looks for devices again only with no stream open
        self.devices: list[InputDevice] = []
        self.missing = ""  # the saved microphone, when it is not connected
        ui = w.ui
        title(parent, "Input").pack(fill="x", **PAD)
        # Unselected segments in the bar's own colour: CTk's default grey reads as a stray bar over them.
        ui.mode = ctk.CTkSegmentedButton(parent, values=["Microphone", "File", "Script"], font=FONT,
                                         fg_color=SEGMENT_BACK, unselected_color=SEGMENT_BACK,
                                         unselected_hover_color=GREY)
        ui.mode.set("Microphone")
        ui.mode.pack(fill="x", **PAD)
        row = ctk.CTkFrame(parent, fg_color="transparent")
        row.pack(fill="x", **PAD)
        ui.device_menu = ctk.CTkOptionMenu(row, values=[NO_DEVICE], font=FONT, width=420,
                                           command=lambda _: ui.mode.set("Microphone"))
        ui.device_menu.pack(side="left")
        ctk.CTkButton(row, text="Refresh", font=FONT, width=100, command=self.refresh_devices).pack(side="left", padx=8)
        ui.device_note = ctk.CTkLabel(parent, text="", font=FONT_SMALL, anchor="w", wraplength=600, justify="left")
        ui.device_note.pack(fill="x", padx=10)
        row = ctk.CTkFrame(parent, fg_color="transparent")
        row.pack(fill="x", **PAD)
        ctk.CTkButton(row, text="Choose file…", font=FONT, width=140, command=self.choose_file).pack(side="left")
        ui.file_path = ctk.StringVar(value="")
        ctk.CTkLabel(row, textvariable=ui.file_path, font=FONT_SMALL, anchor="w").pack(side="left", padx=8)
        ctk.CTkLabel(parent, text="Script: one phrase a line (Script mode); or type a phrase for the brain:",
                     font=FONT_SMALL, anchor="w").pack(fill="x", padx=10)
        ui.script = ctk.CTkTextbox(parent, height=60, font=FONT_SMALL)
        ui.script.pack(fill="x", **PAD)
        row = ctk.CTkFrame(parent, fg_color="transparent")
        row.pack(fill="x", **PAD)
        ui.say = ctk.CTkEntry(row, font=FONT, placeholder_text="a phrase, as if spoken", width=480)
        ui.say.pack(side="left")
        ui.say.bind("<Return>", lambda _: self.say())
        ctk.CTkButton(row, text="Say", font=FONT, width=80, command=self.say).pack(side="left", padx=8)
        ui.start_button = ctk.CTkButton(parent, text="▶ Start", font=FONT_BIG_BUTTON, height=50, fg_color=GREEN,
                                        command=on_start)
        ui.start_button.pack(fill="x", **PAD)

    def refresh_devices(self) -> None:
        """Ask PortAudio for the inputs again (a rescan only with no stream open) and fill the picker; the
        microphone chosen before stays chosen, even when it is not there any more."""
        ui = self.w.ui
        chosen = self.chosen_microphone() if self.devices or self.missing else ""
        try:
            if self.can_rescan():
                rescan_devices()
            devices = list_input_devices()
        except AudioError as e:
            devices, problem = [], str(e)
        else:
            problem = "" if devices else "no microphone found: plug one in and press Refresh, or rehearse with a file"
        self.devices, self.missing = devices, ""
        names = [_label(d) for d in devices]
        ui.device_menu.configure(values=names or [NO_DEVICE])
        ui.device_menu.set(names[0] if names else NO_DEVICE)
        for d, name in zip(devices, names):
            if d.is_default:
                ui.device_menu.set(name)
        ui.device_note.configure(text=problem, text_color=AMBER if problem else GREY)
        if chosen:
            self.preselect(chosen)

    def preselect(self, spec: str) -> None:
        """A recording (File mode) or a device from the config or the command line: its saved `name, host API`,
        a part of its name, or (an older version saved these) an index, shown for the operator to check.
        A saved microphone that is not here stays chosen, marked missing: Start never opens another in its place."""
        ui = self.w.ui
        if spec and Path(spec).expanduser().is_file():
            ui.file_path.set(str(Path(spec).expanduser()))
            ui.mode.set("File")
            return
        text = spec.strip().casefold()
        found = ([d for d in self.devices if d.key.casefold() == text]
                 or [d for d in self.devices if str(d.index) == text]
                 or [d for d in self.devices if text and text in d.name.casefold()])
        if found:
            ui.device_menu.set(_label(found[0]))
        if text.isdigit() and found:
            ui.device_note.configure(text=f"audio.input {text} is a device index (an older version saved it): check "
                                     f"'{found[0].name}' is the microphone; Start saves its name instead",
                                     text_color=AMBER)
        elif text and not found and not text.isdigit():
            self.missing = spec.strip()
            label = f"{self.missing} — not connected"
            ui.device_menu.configure(values=[label, *(_label(d) for d in self.devices)])
            ui.device_menu.set(label)
            ui.device_note.configure(text=f"the saved microphone {self.missing!r} is not connected: plug it in "
                                     "(Start waits for it) or pick another", text_color=AMBER)

    def chosen_microphone(self) -> str:
        """The microphone in the picker as audio.input: its `name, host API`, the missing one's saved name, or
        (two alike) its index; "" when there is none."""
        choice = self.w.ui.device_menu.get()
        if self.missing and choice.startswith(self.missing):
            return self.missing
        chosen = [d for d in self.devices if _label(d) == choice]
        if not chosen:
            return ""
        twins = [d for d in self.devices if d.key == chosen[0].key]
        return chosen[0].key if len(twins) == 1 else str(chosen[0].index)  # two alike: only the index tells

    def choose_file(self) -> None:
        """A file dialog for a rehearsal recording."""
        path = filedialog.askopenfilename(parent=self.w.root, title="Rehearsal recording",
                                          filetypes=[("Audio", "*.wav *.flac *.ogg *.mp3"), ("All files", "*")])
        if path:
            self.w.ui.file_path.set(path)
            self.w.ui.mode.set("File")

    @property
    def mode(self) -> str:
        """"Microphone", "File" or "Script"."""
        return str(self.w.ui.mode.get())

    def selected(self) -> tuple[str | None, list[str] | None]:
        """(input_spec, script) for the next show; AudioError says what is missing."""
        ui = self.w.ui
        if self.mode == "File":
            path = ui.file_path.get().strip()
            if not path:
                raise AudioError("no rehearsal file chosen: press 'Choose file…' first")
            return path, None
        if self.mode == "Script":
            return None, [line.strip() for line in ui.script.get("1.0", "end").splitlines() if line.strip()]
        chosen = self.chosen_microphone()
        if not chosen:
            raise AudioError("no microphone to listen to: plug one in and press Refresh, or rehearse with a file")
        return chosen, None

    def say(self, text: str | None = None) -> None:
        """A typed phrase straight to the brain, as if spoken: show running or not. When no model answers (it
        loads, failed, or there is none) the fallback makes the prompt, and the message line says why at once."""
        text = (self.w.ui.say.get() if text is None else text).strip()
        if not text:
            return
        brain = self.w.controls.engines.brain
        if not (brain.enabled and brain.worker.ready):
            self.w.show_message(f"no brain model answers yet ({brain.absent_reason()}): a fallback prompt "
                                f"answers \"{text}\"", "warning")
        self.w.command(SayText(text))
        self.w.ui.say.delete(0, "end")

    def show_running(self, state: str) -> None:
        """The Start button as the show is: "stopped", "running" or "stopping"."""
        text, colour, enabled = {"stopped": ("▶ Start", GREEN, "normal"), "running": ("■ Stop", RED, "normal"),
                                 "stopping": ("stopping…", GREY, "disabled")}[state]
        self.w.ui.start_button.configure(text=text, fg_color=colour, state=enabled)


def _label(device: InputDevice) -> str:
    api = f" ({device.hostapi})" if device.hostapi else ""
    return f"{device.index}: {device.name}{api}" + (" — default" if device.is_default else "")
