"""One writer for every table we print or save: Markdown, padded so it reads in a terminal too.

A column is `(key, header, format)`: `format` is a format spec (`".2f"`, `","`) or a function of
the value. Missing values print as `-`; columns of numbers are right-aligned.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Column = tuple[str, str, "str | Callable[[Any], str]"]


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    cells = [[_cell(row.get(key), style) for key, _, style in columns] for row in rows]
    headers = [header for _, header, _ in columns]
    numeric = [_all_numbers([row.get(key) for row in rows]) for key, _, _ in columns]
    widths = [max([len(h)] + [len(line[i]) for line in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        padded = [v.rjust(w) if right else v.ljust(w)
                  for v, w, right in zip(values, widths, numeric)]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * (w - 1) + ":" if right else ":" + "-" * (w - 1)
            for w, right in zip(widths, numeric)]
    return "\n".join([line(headers), line(rule), *(line(values) for values in cells)])


def _cell(value: Any, style: str | Callable[[Any], str]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = style(value) if callable(style) else format(value, style)
    return text.replace("|", "\\|")  # a bare "|" would split the cell in two


def _all_numbers(values: list) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                 for v in present)
