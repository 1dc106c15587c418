"""Each bad input ends in one clear message, a non-zero exit, and nothing in the output."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from pipelines.cli import main


def run_cli(params: Path, *args: str) -> int:
    return main(["score", "--params", str(params), "--no-validation", *args])


def bucket_is_empty(params: Path) -> bool:
    """Nothing published: no file in the bucket but a failed attempt's quality report."""
    bucket = params.parent / "bucket"
    files = [p.relative_to(bucket) for p in bucket.rglob("*") if p.is_file()]
    return all(len(f.parts) == 5 and f.parts[2] == "failed" for f in files)


def edit_params(params: Path, section: str, key: str, value: object) -> None:
    data = yaml.safe_load(params.read_text())
    data[section][key] = value
    params.write_text(yaml.safe_dump(data))


def test_happy_path_publishes(params_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(params_file) == 0
    assert "5,003 rows in, 5,003 scored, 0 quarantined" in capsys.readouterr().out
    assert not bucket_is_empty(params_file)


def test_bad_config_value(params_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(params_file, "--set", "score.workers=-1") == 2
    err = capsys.readouterr().err
    assert "score.workers = -1" in err and "greater than or equal to 0" in err
    assert err.count("\n") <= 3 and "Traceback" not in err
    assert bucket_is_empty(params_file)


def test_missing_input_file(params_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(params_file, "--input", str(params_file.parent / "nope.parquet")) == 2
    assert "nope.parquet not found" in capsys.readouterr().err
    assert bucket_is_empty(params_file)


def test_missing_model_file(params_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(params_file, "--model", str(params_file.parent / "gone.skops")) == 2
    assert "gone.skops not found" in capsys.readouterr().err
    assert bucket_is_empty(params_file)


def test_tampered_model_is_refused_before_loading(
    params_file: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pinned = hashlib.sha256((model_dir / "model.skops").read_bytes()).hexdigest()
    tampered = tmp_path / "model.skops"
    data = bytearray((model_dir / "model.skops").read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    assert run_cli(params_file, "--model", str(tampered), "--model-sha256", pinned) == 2
    err = capsys.readouterr().err
    assert f"the pin is {pinned}; refusing to load it" in err
    assert bucket_is_empty(params_file)


def test_pickle_and_untrusted_types_are_refused(
    params_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import joblib
    import skops.io as sio
    from sklearn.dummy import DummyClassifier
    from sklearn.preprocessing import FunctionTransformer

    pkl = tmp_path / "model.joblib"
    joblib.dump(DummyClassifier(), pkl)
    sha = hashlib.sha256(pkl.read_bytes()).hexdigest()
    assert run_cli(params_file, "--model", str(pkl), "--model-sha256", sha) == 2
    assert "pickle/joblib files can run arbitrary code" in capsys.readouterr().err

    risky = tmp_path / "risky.skops"
    sio.dump(FunctionTransformer(func=shutil.rmtree), risky)
    sha = hashlib.sha256(risky.read_bytes()).hexdigest()
    assert run_cli(params_file, "--model", str(risky), "--model-sha256", sha) == 2
    err = capsys.readouterr().err
    assert "not on the trusted list: shutil.rmtree" in err and "model.trusted_types" in err
    assert bucket_is_empty(params_file)


def test_sklearn_version_skew_is_refused(
    params_file: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(model_dir / "model.skops", tmp_path / "model.skops")
    card = yaml.safe_load((model_dir / "model.card.json").read_text())
    card["sklearn_version"] = "1.0.2"
    (tmp_path / "model.card.json").write_text(json.dumps(card))
    assert run_cli(params_file, "--model", str(tmp_path / "model.skops")) == 2
    assert "trained with scikit-learn 1.0.2" in capsys.readouterr().err
    assert bucket_is_empty(params_file)


@pytest.mark.parametrize("change", ["drop", "rename", "retype"])
def test_data_that_does_not_fit_the_model(
    params_file: Path, score_file: Path, tmp_path: Path, change: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    frame = pq.read_table(score_file).to_pandas()
    if change == "drop":
        frame = frame.drop(columns="income")
        expected = "missing column(s) ['income']"
    elif change == "rename":
        frame = frame.rename(columns={"credit_score": "creditscore"})
        expected = "'credit_score' (renamed to 'creditscore'?)"
    else:
        frame["region"] = 7
        expected = "region: int64 (model expects text)"
    frame.to_parquet(tmp_path / "drift.parquet")
    assert run_cli(params_file, "--input", str(tmp_path / "drift.parquet")) == 2
    assert expected in capsys.readouterr().err
    assert bucket_is_empty(params_file)


@pytest.mark.parametrize("content", [b"", b"PAR1 this is not parquet at all"])
def test_empty_or_corrupt_file(
    params_file: Path, tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(content)
    assert run_cli(params_file, "--input", str(path)) == 2
    err = capsys.readouterr().err
    assert ("is empty (0 bytes)" in err) if not content else ("not a readable Parquet" in err)
    assert bucket_is_empty(params_file)


def test_header_only_csv_is_not_an_empty_success(
    params_file: Path, score_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "header.csv"
    pq.read_table(score_file).to_pandas().head(0).to_csv(path, index=False)
    assert run_cli(params_file, "--input", str(path)) == 2
    assert "has no rows; refusing to publish an empty run" in capsys.readouterr().err
    assert bucket_is_empty(params_file)


def test_bad_rows_are_quarantined_with_reasons(
    params_file: Path, score_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pq.read_table(score_file).to_pandas().head(1000)
    frame.to_csv(tmp_path / "in.csv", index=False)
    lines = (tmp_path / "in.csv").read_text().splitlines()
    cols = lines[0].split(",")
    age = cols.index("age")
    row = lines[5].split(",")
    row[age] = "abc"
    lines[5] = ",".join(row)
    row = lines[6].split(",")
    row[age] = "inf"
    lines[6] = ",".join(row)
    lines[7] = ",".join(lines[7].split(",")[:-3])  # too few fields: never NaN-filled
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    edit_params(params_file, "validation", "max_quarantine_fraction", 0.01)
    assert run_cli(params_file, "--input", str(tmp_path / "in.csv")) == 0
    out = capsys.readouterr().out
    assert "1,000 rows in, 997 scored, 3 quarantined" in out
    bucket = params_file.parent / "bucket"
    q = pd.concat(pd.read_parquet(p) for p in bucket.rglob("quarantine/*.parquet"))
    assert sorted(q["_reason"]) == [
        "age: cannot parse 'abc'",
        "age: non-finite value (inf or -inf): inf",
    ]
    bad = pd.concat(pd.read_parquet(p) for p in bucket.rglob("badlines/*.parquet"))
    assert bad["reason"].tolist() == ["csv line has 16 fields, header has 19"]


def test_too_many_bad_rows_fail_the_run(
    params_file: Path, score_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pq.read_table(score_file).to_pandas().head(100)
    frame.loc[:20, "utilization"] = float("-inf")
    frame.to_parquet(tmp_path / "bad.parquet")
    assert run_cli(params_file, "--input", str(tmp_path / "bad.parquet")) == 2
    err = capsys.readouterr().err
    assert "21 of 100 rows (21.00%) were quarantined" in err and "utilization" in err
    assert bucket_is_empty(params_file)


def test_failed_gate_publishes_nothing_but_leaves_a_report(
    params_file: Path, score_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pq.read_table(score_file).to_pandas()
    frame.loc[10, "customer_id"] = frame.loc[11, "customer_id"]  # one duplicated ID
    frame.to_parquet(tmp_path / "dupes.parquet", row_group_size=1_000)
    code = main(["score", "--params", str(params_file), "--input", str(tmp_path / "dupes.parquet")])
    assert code == 2
    err = capsys.readouterr().err
    assert "expect_column_values_to_be_unique(customer_id)" in err
    shared, local = re.fullmatch(
        r"file://(\S+) \(local copy: (\S+)\)", err.rsplit("Report: ")[1].strip()
    ).groups()
    for report in (Path(shared), Path(local)):
        assert report.is_file() and "Why the gate failed" in report.read_text()
    bucket = params_file.parent / "bucket"
    assert Path(shared).parent.parent.name == "failed"  # <model>/<run>/failed/<attempt>/
    assert (Path(shared).parent / "quality.json").is_file()
    assert bucket_is_empty(params_file)  # no manifest, no scores: only the report
    assert not list(bucket.rglob("manifest.json"))


def test_a_huge_field_is_quarantined_whole_and_keeps_the_report_small(
    params_file: Path, score_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pq.read_table(score_file).to_pandas().head(2_000)
    for col in ("age", "region"):
        frame[col] = frame[col].astype(object)
    huge_number, huge_text = "9" * (3 << 20) + "x", "r" * (9 << 20)  # 9 MB > one CSV block
    frame.loc[10, "age"] = huge_number
    frame.loc[20, "region"] = huge_text
    frame.to_csv(tmp_path / "huge.csv", index=False)
    code = main(["score", "--params", str(params_file), "--input", str(tmp_path / "huge.csv")])
    assert code == 0, capsys.readouterr().err
    assert "2,000 rows in, 1,998 scored, 2 quarantined" in capsys.readouterr().out
    bucket = params_file.parent / "bucket"
    q = pd.concat(pd.read_parquet(p) for p in bucket.rglob("quarantine/*.parquet"))
    assert sorted(map(str, q["age"])) == sorted([huge_number, str(frame.loc[20, "age"])])
    assert huge_text in set(q["region"])  # the row is kept whole, nothing lost
    for report in [*bucket.rglob("quality.html"), *bucket.rglob("quality.json")]:
        assert report.stat().st_size < 500_000, report  # reasons quote values, shortened
