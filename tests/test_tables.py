"""The one table writer: Markdown that also reads in a terminal."""

from __future__ import annotations

from teacher_student.tables import markdown_table

COLUMNS = [("name", "model", ""), ("share", "accuracy", lambda v: f"{100 * v:.1f}%"),
           ("params", "params", ",")]


def test_columns_are_padded_numbers_right_aligned_and_missing_values_dashed():
    text = markdown_table([{"name": "teacher", "share": 0.987, "params": 1234567},
                           {"name": "s|t", "share": 0.5}], COLUMNS)
    assert text.splitlines() == [
        "| model   | accuracy |    params |",
        "| :------ | -------: | --------: |",
        "| teacher |    98.7% | 1,234,567 |",
        "| s\\|t    |    50.0% |         - |",
    ]


def test_a_table_without_rows_is_its_header():
    assert markdown_table([], COLUMNS).splitlines()[0] == "| model | accuracy | params |"
