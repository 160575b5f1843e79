"""The performance window (customtkinter): its panels, the stage view, the platform's ways."""

from voicevibe.gui.fonts import import_customtkinter

import_customtkinter()  # before any panel imports it: its fonts, without ~/.fonts (gui/fonts.py)
