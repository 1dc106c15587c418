"""Scores are exactly `predict_proba` on the same rows, whatever the chunking, workers or format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import skops.io as sio

from pipelines.data.demo import make_frame
from pipelines.publish.commit import read_manifest
from pipelines.run.pipeline import run_pipeline
from pipelines.storage.open import open_store


def published_scores(cfg, manifest) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    store = open_store(cfg)
    frames = [
        pq.read_table(store.local_path(p.key)).to_pandas()
        for p in manifest.parts
        if p.kind == "scores"
    ]
    return pd.concat(frames, ignore_index=True)


def reference(model_dir: Path, score_file: Path) -> pd.DataFrame:
    model = sio.load(
        model_dir / "model.skops", trusted=sio.get_untrusted_types(file=model_dir / "model.skops")
    )
    frame = pq.read_table(score_file).to_pandas()
    proba = model.predict_proba(frame[list(model.feature_names_in_)])
    return pd.DataFrame({"customer_id": frame["customer_id"], "score": proba[:, 1]})


@pytest.mark.parametrize(("chunk", "workers", "shard_rows"), [(997, 1, 10**6), (333, 2, 2_000)])
def test_scores_equal_predict_proba_exactly_across_chunks(
    make_cfg, model_dir, score_file, chunk, workers, shard_rows
) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(
        **{"score.chunk_size": chunk, "score.workers": workers, "score.shard_rows": shard_rows},
        **{"validation.enabled": False},
    )
    manifest = run_pipeline(cfg)
    got = published_scores(cfg, manifest)
    want = reference(model_dir, score_file)
    assert manifest.counts.rows_in == len(want) == 5_003
    assert manifest.chunks >= 5_003 // chunk
    assert got["customer_id"].tolist() == want["customer_id"].tolist()
    assert np.array_equal(got["score"].to_numpy(), want["score"].to_numpy())  # bit-for-bit
    assert set(got["run_key"].astype(str)) == {"test-run"}
    assert read_manifest(open_store(cfg), manifest.model.name, "test-run") == manifest


def test_reordered_columns_and_csv_give_identical_scores(
    make_cfg, model_dir, score_file, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    frame = pq.read_table(score_file).to_pandas()
    shuffled = frame[list(reversed(frame.columns))]
    shuffled.to_parquet(tmp_path / "shuffled.parquet")
    frame.to_csv(tmp_path / "same.csv", index=False)
    want = reference(model_dir, score_file)
    for i, path in enumerate([tmp_path / "shuffled.parquet", tmp_path / "same.csv"]):
        cfg = make_cfg(**{"data.path": str(path), "run.key": f"r{i}", "validation.enabled": False})
        got = published_scores(cfg, run_pipeline(cfg))
        assert got["customer_id"].astype("int64").tolist() == want["customer_id"].tolist()
        assert np.allclose(got["score"], want["score"], rtol=0, atol=1e-12), path.name


def test_a_users_own_model_and_data_score_through_cli_flags(tmp_path: Path) -> None:
    """Someone else's columns, id name, classes and model kind: no demo file is involved."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    n = 3_001
    data = pd.DataFrame(
        {
            "order_ref": [f"ord-{i:06d}" for i in range(n)],
            "basket_value": rng.gamma(2, 30, n),
            "items": rng.integers(1, 20, n),
            "country": rng.choice(["de", "fr", "it"], n),
        }
    )
    y = np.where(data["basket_value"] > 60, "big", "small")
    model = make_pipeline(
        make_column_transformer(
            (StandardScaler(), ["basket_value", "items"]),
            (OneHotEncoder(handle_unknown="ignore"), ["country"]),
        ),
        LogisticRegression(),
    ).fit(data.drop(columns="order_ref"), y)
    sio.dump(model, tmp_path / "theirs.skops")
    data.loc[5, "country"] = "xx"  # their own input suite quarantines it
    data.to_parquet(tmp_path / "theirs.parquet", row_group_size=700)
    suite = tmp_path / "their_suite.json"
    checks = [
        ("expect_table_row_count_to_be_between", {"min_value": 1}),
        ("expect_column_values_to_not_be_null", {"column": "order_ref"}),
        ("expect_column_values_to_be_unique", {"column": "order_ref"}),
        (
            "expect_column_values_to_be_in_set",
            {"column": "country", "value_set": ["de", "fr", "it"]},
        ),
    ]
    expectations = [{"type": t, "kwargs": kw} for t, kw in checks]
    suite.write_text(json.dumps({"name": "theirs", "expectations": expectations}))
    sha = __import__("hashlib").sha256((tmp_path / "theirs.skops").read_bytes()).hexdigest()
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "pipelines.cli", "score",
        "--input", str(tmp_path / "theirs.parquet"),
        "--model", str(tmp_path / "theirs.skops"),
        "--model-sha256", sha,
        "--output", f"file://{out}",
        "--run-key", "theirs-1",
        "--set", f"validation.input_suite={suite}",  # the shipped output suite is model-agnostic
        "--set", "data.id_column=order_ref",
        "--chunk-size", "500",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "3,001 rows in, 3,000 scored, 1 quarantined" in done.stdout
    parts = sorted(out.glob("theirs/theirs-1/attempts/*/scores/*.parquet"))
    got = pd.concat(pq.read_table(p).to_pandas() for p in parts)
    data = data.drop(index=5)
    proba = model.predict_proba(data.drop(columns="order_ref"))
    assert got["order_ref"].tolist() == data["order_ref"].tolist()
    assert np.array_equal(got["score"].to_numpy(), proba[:, 1])
    assert set(got["predicted_class"]) <= {"big", "small"}
    assert (out / "theirs" / "theirs-1" / "manifest.json").is_file()


def test_frame_generator_is_seeded() -> None:
    a, b = make_frame(100, seed=5), make_frame(100, seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert not make_frame(100, seed=6).equals(a)


def _affinity_after(seconds: float) -> list[int]:
    import os
    import time

    time.sleep(seconds)  # keeps this worker busy so the next task goes to the other one
    return sorted(os.sched_getaffinity(0))


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_setaffinity"), reason="Linux only")
def test_pinned_workers_each_get_their_own_cpu() -> None:
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor

    from pipelines.run.pool import init_worker

    cpus = sorted(os.sched_getaffinity(0))
    ctx = mp.get_context("fork")
    slots = ctx.Value("i", 0)
    workers = min(2, len(cpus))
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=init_worker, initargs=(None, slots)
    ) as pool:
        seen = [f.result() for f in [pool.submit(_affinity_after, 0.5) for _ in range(workers)]]
    assert all(len(a) == 1 for a in seen), seen  # each worker on exactly one CPU
    assert sorted(a[0] for a in seen) == cpus[:workers]  # and no two on the same one
    assert sorted(os.sched_getaffinity(0)) == cpus  # the parent is left alone
