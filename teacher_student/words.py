"""Counts in words, singular when there is one: `1 epoch`, `3 epochs`, `1 replica`."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`count` and `noun`, in the plural (`plural`, or `noun` + s) unless `count` is 1."""
    return f"{count:,} {noun if count == 1 else plural or f'{noun}s'}"
