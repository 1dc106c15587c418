"""Values as the text a model's classes are compared in (the manifest's `scores.classes`).

The manifest holds each class as `str()` of the model's class value ("1", "churn", "True",
"1.0"); a label or a published `predicted_class` is turned into text the same way. A label of
1.0 also matches a class "1" and a label 1 a class "1.0", since Parquet files often hold integer
labels as floats; anything else must match as text exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def as_text(values: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """Each value's text and its alternative text (integral float <-> integer), nulls kept."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = values if pa.types.is_dictionary(values.type) else pc.dictionary_encode(values)
    uniques = encoded.dictionary.to_pylist()
    texts = pa.array([_text(v) for v in uniques], pa.string())
    alts = pa.array([_alternative(v) for v in uniques], pa.string())
    indices = encoded.indices
    return texts.take(indices), alts.take(indices)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _alternative(value: object) -> str | None:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return str(float(value))
    return None


def class_of(text: pd.Series, alternative: pd.Series, classes: Sequence[str]) -> np.ndarray:
    """Index of each label's class in `classes` (text first, then its alternative), else -1."""
    lookup = {c: i for i, c in enumerate(classes)}
    first = text.map(lookup)
    second = alternative.map(lookup)
    found = first.where(first.notna(), second)
    return found.fillna(-1).to_numpy(dtype=np.int64).astype(np.int32)


def class_index(values: pa.Array | pa.ChunkedArray, classes: Sequence[str]) -> np.ndarray:
    """Index in `classes` of each value (a published `predicted_class`), -1 if none matches."""
    text, alt = as_text(values)
    return class_of(_series(text), _series(alt), classes)


def _series(values: pa.Array) -> pd.Series:
    return pd.Series(values.to_numpy(zero_copy_only=False), dtype=object)
