"""Strict-JSON copies of gate state and verdicts: reports and shard states must load anywhere.

Python's json writes NaN and inf as bare literals that strict parsers refuse, and cannot write numpy
scalars at all; examples of bad values are exactly where those occur.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd


def json_safe(value: Any) -> Any:
    """Strict-JSON copy of nested dicts/lists (no NaN/inf literals, no numpy types)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, str):
        return value
    return jsonable(value)


def jsonable(value: Any) -> Any:
    """JSON-safe example value: NaN/inf as text, numpy as Python, long text cut to 200 chars."""
    if value is None or isinstance(value, bool | str):
        return value[:200] if isinstance(value, str) else value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, int):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | np.datetime64):
        return str(value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return re.sub(r"\s+", " ", str(value))[:200]
