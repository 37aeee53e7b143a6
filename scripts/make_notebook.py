"""Writes notebooks/kaggle_t4.ipynb from the files of notebooks/kaggle_t4_cells/, so that the
notebook is reviewed as code.

    python scripts/make_notebook.py           # (re)write the notebook
    python scripts/make_notebook.py --check   # exit 1 if the notebook differs from the cells

One file a cell, in the order of their names: `NN_section.md` is a markdown cell and
`NN_section.py` a code cell, the markdown first; the code cell `NN_parameters.py` is tagged
"parameters" (papermill's, and the tests'). Edit those files, never the .ipynb by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOK = NOTEBOOKS / "kaggle_t4.ipynb"
CELLS = NOTEBOOKS / "kaggle_t4_cells"
PARAMETERS = "parameters"  # the stem's part after NN_ of the cell tagged "parameters"


def new_cell(path: Path, index: int) -> nbformat.NotebookNode:
    source = path.read_text(encoding="utf-8").rstrip("\n")
    cell_id = f"cell-{index:02d}"  # fixed ids: the file only changes when a cell does
    if path.suffix == ".md":
        return nbformat.v4.new_markdown_cell(source, id=cell_id)
    cell = nbformat.v4.new_code_cell(source, id=cell_id)
    if path.stem.partition("_")[2] == PARAMETERS:
        cell.metadata["tags"] = [PARAMETERS]
    return cell


def build(cells: Path = CELLS) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    paths = sorted(p for p in cells.iterdir() if p.suffix in (".md", ".py"))
    notebook.cells = [new_cell(path, index) for index, path in enumerate(paths)]
    nbformat.validate(notebook)
    return notebook


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the notebook differs from the cells' files")
    args = parser.parse_args()
    text = nbformat.writes(build()) + "\n"
    if args.check:
        if not NOTEBOOK.exists() or NOTEBOOK.read_text() != text:
            print(f"{NOTEBOOK} is out of date: run python scripts/make_notebook.py",
                  file=sys.stderr)
            return 1
        return 0
    NOTEBOOK.parent.mkdir(parents=True, exist_ok=True)
    NOTEBOOK.write_text(text)
    print(f"wrote {NOTEBOOK}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
