"""Faults of the machine a local run lives on, injected for real: a full disk and a read-only
mount (tmpfs), SIGTERM mid-run, an address-space limit; and the CSV/typing rows of the matrix.

Each asserts the promise: a clear one-line error, nothing visible, staging cleaned, or every row
accounted for.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.data.demo import write_dataset
from pipelines.errors import SchemaMismatchError
from pipelines.run.plan import plan_run
from tests.faults.user_inputs import published, score_cli, their_data, their_model


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Any]:
    """Mount a real tmpfs (root only); unmounted at the end."""
    mounted: list[Path] = []

    def make(path: Path, options: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(path)
        return path

    yield make
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_row39_disk_full_is_one_clear_error_and_nothing_is_visible(
    tmp_path: Path, mount: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _, model, sha = their_model(tmp_path)
    their_data(20_000).to_parquet(tmp_path / "in.parquet")
    out = mount(tmp_path / "out", "size=96k")
    code = score_cli(tmp_path, tmp_path / "in.parquet", model, sha)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "disk is full" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not list(out.rglob("manifest.json"))
    assert not [p for p in out.rglob("*") if p.is_file()], "staging left behind"


def test_row39_read_only_output_is_one_clear_error(
    tmp_path: Path, mount: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _, model, sha = their_model(tmp_path)
    their_data(500).to_parquet(tmp_path / "in.parquet")
    out = mount(tmp_path / "out", "ro,size=64k")
    code = score_cli(tmp_path, tmp_path / "in.parquet", model, sha)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "read-only" in err and "Traceback" not in err, err
    assert not list(out.rglob("*"))


@pytest.fixture(scope="module")
def slow_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough rows that a run with tiny chunks lasts a few seconds."""
    d = tmp_path_factory.mktemp("slow")
    return write_dataset(d / "slow.parquet", 120_000, 5, 10_000, with_label=False)


@pytest.mark.parametrize("workers", [1, 2])
def test_row40_sigterm_stops_with_one_line_and_a_rerun_commits_once(
    tmp_path: Path, params_file: Path, slow_input: Path, workers: int
) -> None:
    bucket = params_file.parent / "bucket"
    cmd = [
        sys.executable, "-m", "pipelines.cli", "score", "--params", str(params_file),
        "--input", str(slow_input), "--chunk-size", "200", "--workers", str(workers),
        "--set", "score.shard_rows=20000", "--set", "validation.enabled=false",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until shards are being staged
        if list(bucket.rglob("attempts/*/scores")) or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be stopped"
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    lines = [line for line in err.splitlines() if line.startswith("batchscore:")]
    assert lines == ["batchscore: stopped by SIGTERM; nothing was published"], err
    assert "Traceback" not in err
    assert not list(bucket.rglob("manifest.json"))
    # what is left is invisible staging of one attempt (no manifest, nothing a reader trusts):
    # the shards that finished, with their records, for the rerun to reuse
    left = [p.relative_to(bucket) for p in bucket.rglob("*") if p.is_file()]
    assert all(p.parts[2] == "attempts" for p in left), left
    recorded = len(list(bucket.rglob("shards/shard-*.json")))
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    manifests = list(bucket.rglob("manifest.json"))
    assert len(manifests) == 1
    manifest = json.loads(manifests[0].read_text())
    assert manifest["counts"]["rows_scored"] == 120_000
    assert manifest["shards_reused"] == recorded
    attempts = {p.name for p in bucket.rglob("attempts/*") if p.parent.name == "attempts"}
    assert attempts == {manifest["attempt_id"]}


def test_row19_a_run_finishes_under_an_address_space_limit(
    tmp_path: Path, params_file: Path, slow_input: Path
) -> None:
    """RLIMIT_AS well below what reading the whole input as a frame would need at 10x."""
    limit = 3 << 30
    code = (
        "import resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit})); "
        "from pipelines.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    big = tmp_path / "big.parquet"
    table = pq.read_table(slow_input)
    with pq.ParquetWriter(big, table.schema) as writer:
        for _ in range(10):  # 1.2M rows, written in row groups of 10k
            writer.write_table(table, row_group_size=10_000)
    done = subprocess.run(
        [sys.executable, "-c", code, "score", "--params", str(params_file), "--input", str(big),
         "--set", "score.shard_rows=300000", "--set", "validation.enabled=false"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1,200,000 rows in, 1,200,000 scored" in done.stdout


def test_row13_stray_quotes_inside_fields_are_accounted_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, model, sha = their_model(tmp_path)
    lines = their_data(300).to_csv(index=False).splitlines()
    ref, basket, items, country = lines[5].split(",")
    lines[5] = f'{ref},{basket},{items},d"e'  # a quote inside an unquoted field
    ref, basket, items, country = lines[6].split(",")
    lines[6] = f'{ref},{basket},{items},"{country}"x'  # text after a closing quote
    (tmp_path / "quotes.csv").write_text("\n".join(lines) + "\n")
    code = score_cli(tmp_path, tmp_path / "quotes.csv", model, sha)
    out = capsys.readouterr()
    # Both are one record each with the header's field count: read as text (a quote inside an
    # unquoted field is literal; text after a closing quote is appended), nothing swallowed.
    assert code == 0, out.err
    assert "300 rows in, 300 scored, 0 quarantined" in out.out
    got = published(tmp_path)
    assert got["ref"].tolist() == [str(i) for i in range(1, 301)]  # CSV IDs: text as written


def test_row16_thousands_separators_quarantine_and_a_float_key_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_cfg: Any
) -> None:
    _, model, sha = their_model(tmp_path)
    data = their_data(400).astype({"basket": object})
    data.loc[3, "basket"] = "1,234"
    data.loc[4, "basket"] = "abc"
    data.to_csv(tmp_path / "typed.csv", index=False)
    assert score_cli(tmp_path, tmp_path / "typed.csv", model, sha) == 0, capsys.readouterr().err
    q = published(tmp_path, "quarantine")
    assert sorted(q["_reason"]) == ["basket: cannot parse '1,234'", "basket: cannot parse 'abc'"]
    assert q["basket"].tolist() == ["1,234", "abc"]  # kept as read
    floats = pq.read_table(make_cfg().data.path).slice(0, 100)
    i = floats.column_names.index("customer_id")
    floats = floats.set_column(i, "customer_id", floats.column(i).cast(pa.float64()))
    pq.write_table(floats, tmp_path / "float_ids.parquet")
    with pytest.raises(SchemaMismatchError, match="IDs must be integers or text"):
        plan_run(make_cfg(data__path=str(tmp_path / "float_ids.parquet")))


def test_row17_extreme_values_never_reach_a_model_without_a_range_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """±inf quarantined; NaN is the model's to refuse (loudly); 1e308 is finite and scored
    exactly as predict_proba scores it unless the suite bounds the column."""
    model, path, sha = their_model(tmp_path)
    data = their_data(200)
    data.loc[2, "basket"] = 1e308
    data.loc[3, "items"] = -np.inf
    data.to_parquet(tmp_path / "x.parquet")
    assert score_cli(tmp_path, tmp_path / "x.parquet", path, sha) == 0, capsys.readouterr().err
    got = published(tmp_path).set_index("ref")
    assert 4 not in got.index
    row = data.loc[[2]].drop(columns="ref")
    assert got.loc[3, "score"] == model.predict_proba(row)[0, 1]
    frame = pd.read_parquet(tmp_path / "x.parquet")
    assert len(got) + 1 == len(frame)


def test_row42_a_key_repeated_inside_a_section_is_refused(tmp_path: Path) -> None:
    from pipelines.config import load_config
    from pipelines.errors import ConfigError

    path = tmp_path / "params.yaml"
    path.write_text("score:\n  chunk_size: 100\n  workers: 2\n  chunk_size: 200\n")
    with pytest.raises(ConfigError, match="'chunk_size' appears twice.*lines 2 and 4"):
        load_config(path)


def test_row40_sigterm_during_the_manifest_write_waits_for_the_commit(
    make_cfg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real SIGTERM delivered while the manifest is written: the run is published and the
    stop is not turned into a failure of a published run."""
    from pipelines import termination
    from pipelines.run.pipeline import run_pipeline
    from pipelines.storage.local import LocalStore

    cfg = make_cfg(validation__enabled=False)
    real_put = LocalStore.put_bytes

    def put_and_get_stopped(self: LocalStore, key: str, data: bytes, **kw: Any) -> bool:
        if key.endswith("manifest.json"):
            os.kill(os.getpid(), signal.SIGTERM)  # arrives mid-commit
        return real_put(self, key, data, **kw)

    previous = signal.getsignal(signal.SIGTERM)
    termination.install()
    try:
        monkeypatch.setattr(LocalStore, "put_bytes", put_and_get_stopped)
        manifest = run_pipeline(cfg)
    finally:
        signal.signal(signal.SIGTERM, previous)
    bucket = Path(cfg.output.uri.removeprefix("file://"))
    assert (bucket / manifest.model.name / cfg.run_key / "manifest.json").is_file()
    assert manifest.counts.rows_scored + manifest.counts.rows_quarantined == 5_003


class _StopInDel:
    """Sends its own process SIGTERM from `__del__` and runs on, so the handler runs inside it:
    Python prints the `Terminated` raised there as "Exception ignored" and drops it."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        until = time.monotonic() + 0.2
        while time.monotonic() < until:  # the handler runs here, at a bytecode boundary
            pass


def test_row40_a_sigterm_whose_exception_was_dropped_still_stops_the_run(
    make_cfg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CI failure: a run sent SIGTERM while scoring went on, published, and exited 0. Where
    the handler's exception is dropped (in a `__del__`, a weakref or ctypes callback), the stop
    it recorded stops the run after the batch, before anything is published."""
    from pipelines import termination
    from pipelines.run import shard
    from pipelines.run.pipeline import run_pipeline

    cfg = make_cfg(validation__enabled=False, score__chunk_size=500, validation__batch_rows=500)
    real = shard.write_bad_lines
    calls = []

    def write_and_drop_a_stop(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            _StopInDel()  # collected at once: the stop arrives, and its exception is dropped
        real(*args, **kwargs)

    dropped: list[type[BaseException] | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: dropped.append(u.exc_type))
    previous = signal.getsignal(signal.SIGTERM)
    termination.install()
    try:
        monkeypatch.setattr(shard, "write_bad_lines", write_and_drop_a_stop)
        with pytest.raises(termination.Terminated):
            run_pipeline(cfg)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert dropped == [termination.Terminated]  # the handler's own exception was dropped
    assert len(calls) == 2  # stopped after the batch it came in, not at the end
    bucket = Path(cfg.output.uri.removeprefix("file://"))
    assert not list(bucket.rglob("manifest.json"))


@pytest.mark.parametrize("gate", [True, False])
def test_row17_nan_rows_a_model_cannot_take_are_quarantined_not_fatal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], gate: bool
) -> None:
    """A scaler + LogisticRegression has no imputer: its NaN rows are quarantined with a
    reason, every other row is scored exactly as predict_proba scores it."""
    model, path, sha = their_model(tmp_path)
    data = their_data(1_000)
    data.loc[[10, 500, 900], "basket"] = np.nan
    data.to_parquet(tmp_path / "nan.parquet", row_group_size=300)
    extra = () if gate else ("--no-validation",)
    code = score_cli(tmp_path, tmp_path / "nan.parquet", path, sha, "--chunk-size", "128", *extra)
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "1,000 rows in, 997 scored, 3 quarantined" in out.out
    q = published(tmp_path, "quarantine")
    assert sorted(q["ref"]) == [11, 501, 901]
    assert set(q["_reason"]) == {"missing value the model cannot take"}
    got = published(tmp_path)
    clean = data.drop(index=[10, 500, 900])
    assert got["ref"].tolist() == clean["ref"].tolist()
    assert np.array_equal(
        got["score"].to_numpy(), model.predict_proba(clean.drop(columns="ref"))[:, 1]
    )
