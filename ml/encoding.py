"""Map string identifiers (tasks, players, classes) to 0-based integer codes and back.

Order rule, used for class codes and for sorting tasks in CLI output: when every value is an integer
literal (optional sign, ASCII digits) values sort numerically, otherwise lexicographically by their
Unicode code points. Equal numbers written differently ("7" and "07") stay distinct values and sort
by their text after the number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from ml._crowd import IntArray

__all__ = ["all_integers", "encode", "sorted_values"]

_INTEGER = re.compile(r"[+-]?[0-9]+")


def all_integers(values: Iterable[str]) -> bool:
    """Whether every value is an integer literal such as ``"12"`` or ``"-3"``."""
    return all(_INTEGER.fullmatch(value) for value in values)


def sorted_values(values: Iterable[str]) -> list[str]:
    """Distinct values in the order rule of this module (numeric when all are integers)."""
    distinct = set(values)
    if all_integers(distinct):
        return sorted(distinct, key=lambda value: (int(value), value))
    return sorted(distinct)


def encode(
    values: Sequence[str], categories: Sequence[str] | None = None
) -> tuple[IntArray, list[str]]:
    """Codes of ``values`` in ``categories`` (default: :func:`sorted_values` of ``values``).

    Parameters
    ----------
    values : sequence of str, length n
    categories : sequence of str, optional
        Must contain every value.

    Returns
    -------
    codes : (n,) int64
        ``categories[codes[i]] == values[i]``.
    categories : list of str

    Raises
    ------
    KeyError
        When a value is missing from ``categories``.
    """
    order = list(categories) if categories is not None else sorted_values(values)
    index = {value: code for code, value in enumerate(order)}
    codes = np.fromiter((index[value] for value in values), dtype=np.int64, count=len(values))
    return codes, order
