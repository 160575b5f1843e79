"""One row of `voicevibe doctor`'s table: the one row type for every check (doctor's, the server checks,
`voicevibe prompt --model URL`). A leaf: it imports nothing of the package."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One line of the table: what, ok or not, what was found, and what to do."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    needed: bool = True  # False: a warning, the show can start anyway
