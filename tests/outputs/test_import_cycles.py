"""No import cycle among the outputs modules, counting imports inside functions
(scripts/import_cycles.py reads them from the source)."""

from __future__ import annotations

from pathlib import Path

from helpers import load_script

ROOT = Path(__file__).resolve().parents[2]


def _finder():
    return load_script("import_cycles")


def test_a_cycle_hidden_in_a_function_is_found(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("def f():\n    from pkg.a import x\n")
    finder = _finder()
    graph = finder.import_graph(package)
    assert finder.strongly_connected(graph) == [["pkg.a", "pkg.b"]]


def test_the_outputs_modules_import_each_other_in_one_direction():
    finder = _finder()
    groups = finder.strongly_connected(finder.import_graph(ROOT / "teacher_student"))
    assert not [group for group in groups
                if any(module.startswith("teacher_student.outputs") for module in group)]
