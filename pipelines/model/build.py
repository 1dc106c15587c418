"""The demo model: a scikit-learn pipeline (preprocessing + classifier) for the churn data.

Two kinds: `hgb` (HistGradientBoosting, categories ordinal-encoded, missing values native) and a
logistic regression (imputed, scaled, one-hot). Fitted on a DataFrame, so the column names are
kept in the model and checked against the input when it is loaded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from pipelines.model.artifact import Feature


def build_pipeline(
    numeric: list[str], categorical: list[str], kind: str, max_iter: int, seed: int
) -> Pipeline:
    """The demo model: preprocessing + classifier, fitted on a DataFrame so names are kept."""
    if kind == "hgb":
        pre = ColumnTransformer(
            [
                ("num", "passthrough", numeric),
                (
                    "cat",
                    OrdinalEncoder(
                        handle_unknown="use_encoded_value",
                        unknown_value=np.nan,
                        encoded_missing_value=np.nan,
                    ),
                    categorical,
                ),
            ],
            verbose_feature_names_out=False,
        )
        is_cat = [False] * len(numeric) + [True] * len(categorical)
        clf = HistGradientBoostingClassifier(
            max_iter=max_iter, categorical_features=is_cat, random_state=seed
        )
        return Pipeline([("preprocess", pre), ("classifier", clf)])
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                categorical,
            ),
        ]
    )
    clf = LogisticRegression(max_iter=max_iter * 5, random_state=seed)
    return Pipeline([("preprocess", pre), ("classifier", clf)])


def feature_kinds(frame: pd.DataFrame) -> list[Feature]:
    """Numeric columns are 'numeric', everything else is 'categorical'."""
    return [
        Feature(c, "numeric" if pd.api.types.is_numeric_dtype(frame[c]) else "categorical")
        for c in frame.columns
    ]
