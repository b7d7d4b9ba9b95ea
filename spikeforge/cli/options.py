"""Option building blocks: range-checked numbers, lazily loaded choices, one-line parse errors.

A range check runs while argparse parses, so a bad number is refused before any work starts;
it raises ``UsageError`` (which argparse lets through) so the message names the option.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from spikeforge.cli.errors import UsageError

HINT = "see --help and docs/cli.md"


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one ``UsageError`` line instead of usage + exit."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{message} ({HINT})")


def int_option(option: str, lo: int, hi: int, label: str | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``lo..hi`` or a ``UsageError`` naming ``option``
    (``label`` replaces the default "must be in LO..HI")."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise UsageError(f"{option} expects an integer, got {text!r}") from None
        if not lo <= value <= hi:
            need = f">= {lo}" if value < lo else f"<= {hi}"
            text = label or f"must be in {lo}..{hi}"
            raise UsageError(f"{option} {text}: got {value}, need {need}")
        return value

    parse.__name__ = "int"
    return parse


def float_option(
    option: str, lo: float, hi: float, lo_in: bool, hi_in: bool
) -> Callable[[str], float]:
    """An argparse type: a finite number in the interval, or a ``UsageError`` naming it."""
    shown = f"{'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"{option} expects a number, got {text!r}") from None
        ok = math.isfinite(value) and (lo <= value if lo_in else lo < value)
        if not (ok and (value <= hi if hi_in else value < hi)):
            raise UsageError(f"{option} must be in {shown}, got {text}")
        return value

    parse.__name__ = "float"
    return parse


def core_option(option: str, field: str) -> tuple[Callable[[str], int], str]:
    """A type for a hardware core width (``spikeforge.checks.core_range``) and its help range."""
    from spikeforge.checks import core_range

    lo, hi = core_range(field)
    label = f"must be in {lo}..{hi} (the hardware core's {field})"
    return int_option(option, lo, hi, label), f"{lo}..{hi}"


class LazyChoices(Sequence[str]):
    """Choices read from a registry only when needed (``--help`` text or checking a value),
    so building the parser stays light (no torch for ``--method``)."""

    def __init__(self, load: Callable[[], Sequence[str]]):
        self._load = load
        self._items: list[str] | None = None

    def _get(self) -> list[str]:
        if self._items is None:
            self._items = list(self._load())
        return self._items

    def __getitem__(self, index: Any) -> Any:
        return self._get()[index]

    def __len__(self) -> int:
        return len(self._get())

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __contains__(self, value: object) -> bool:
        return value in self._get()
