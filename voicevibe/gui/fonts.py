"""CustomTkinter's fonts on Linux without writing into the user's home.

On import, CustomTkinter copies its Roboto and shape fonts into `~/.fonts` (`os.mkdir`, one level)
so that fontconfig finds them; when that folder cannot be made (no home folder, a read-only one) it
prints "The rendering quality will be bad!" and draws its rounded corners with circles. Here the
import's complaint is kept off the terminal, and the fonts are given to fontconfig for this process
only (`FcConfigAppFontAddFile`, no file written); only when that fails too is the fallback logged.
Imported by `voicevibe.gui` before any panel imports CustomTkinter; elsewhere (macOS, Windows) the
fonts need nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

FONT_FILES = ("Roboto/Roboto-Regular.ttf", "Roboto/Roboto-Medium.ttf", "CustomTkinter_shapes_font.otf")


def add_app_fonts(files: list[Path]) -> bool:
    """Make font files visible to this process's fontconfig (and so to Tk); False when fontconfig cannot."""
    name = ctypes.util.find_library("fontconfig")
    if name is None:
        return False
    try:
        fontconfig = ctypes.CDLL(name)
    except OSError:
        return False
    fontconfig.FcConfigAppFontAddFile.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    return all(fontconfig.FcConfigAppFontAddFile(None, str(f).encode()) for f in files)


def import_customtkinter() -> None:
    """Import CustomTkinter with its shape font loaded, quietly (see the module's docstring)."""
    if not sys.platform.startswith("linux") or "customtkinter" in sys.modules:
        return
    complaint = io.StringIO()
    with contextlib.redirect_stderr(complaint):
        import customtkinter
        from customtkinter.windows.widgets.core_rendering import DrawEngine
    if DrawEngine.preferred_drawing_method == "font_shapes":
        return  # its own way worked (~/.fonts)
    assets = Path(customtkinter.__file__).parent / "assets" / "fonts"
    if add_app_fonts([assets / f for f in FONT_FILES]):
        DrawEngine.preferred_drawing_method = "font_shapes"
        log.debug("CustomTkinter's fonts loaded through fontconfig (%s)", complaint.getvalue().strip())
    else:
        log.warning("CustomTkinter's shape font could not be loaded (%s): rounded corners are drawn coarsely",
                    complaint.getvalue().strip())
