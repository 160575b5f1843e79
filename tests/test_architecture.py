"""The package's shape, checked: no import cycle (type-only imports included), a small top level, short modules,
and a window process that never loads a model's library. (`make lint` checks the layers: pyproject.toml.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

import voicevibe

PACKAGE = Path(voicevibe.__file__).parent
MAX_TOP_LEVEL = 25
MAX_LINES = 500
MODEL_LIBRARIES = ("mlx", "moshi_mlx", "rustymimi", "llama_cpp", "sentencepiece")


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every group of modules that import each other, directly or not (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while (top := stack.pop()) != module:
                group.append(top)
            if group:
                found.append(sorted([module, *group]))

    sys.setrecursionlimit(10_000)
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_round_a_cycle_not_even_for_types():
    graph = grimp.build_graph("voicevibe")  # imports under `if TYPE_CHECKING:` count
    assert cycles(graph) == []


def test_a_cycle_is_found_when_there_is_one():
    graph = grimp.ImportGraph()
    for name in ("a", "a.b", "a.c", "a.d"):
        graph.add_module(name)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a.b")
    graph.add_import(importer="a.d", imported="a.b")
    assert cycles(graph) == [["a.b", "a.c"]]


def test_the_top_level_is_small_and_every_module_short():
    top = [p.name for p in PACKAGE.glob("*.py")]
    assert len(top) <= MAX_TOP_LEVEL, sorted(top)
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_the_window_and_a_headless_show_load_no_model_library():
    """The main process, as the window and `run --no-gui` import it: the models live in their workers."""
    code = ("import sys; import voicevibe.gui.window, voicevibe.terminal, voicevibe.cli; "
            f"print(sorted(m for m in {MODEL_LIBRARIES!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
