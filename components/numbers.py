"""The number checks and fixes the configuration readers share: a finite number, an int, a whole float back to int."""
from __future__ import annotations

import math


def finite_number(value) -> bool:
    """An int or float, not a bool (an int subclass) and not NaN or infinite (a NaN bound passes anything)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value) -> bool:
    """An int, not a bool (an int subclass)."""
    return isinstance(value, int) and not isinstance(value, bool)


def whole(value):
    """A whole float as int, anything else as it is: KFP passes the JSON numbers of dict parameters as floats."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def whole_numbers(value):
    """`value` with every whole float in it, through dicts and lists, as int (see `whole`)."""
    if isinstance(value, dict):
        return {k: whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_numbers(v) for v in value]
    return whole(value)
