"""The trust promise, one hole at a time: every record accounted for, every ID exact, a shard
reads only the planned bytes, non-finite features never reach the model, nothing fails after
the commit, and a score says which class it is for.

Inputs and models here are made by the tests (not the demo's), as a new user would bring them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from pipelines.config import load_config
from pipelines.errors import ConfigError, InputChangedError, InputDataError
from pipelines.run.finalize import finalize_run
from pipelines.run.plan import plan_run
from pipelines.run.shard import score_shard
from tests.faults.user_inputs import (
    nothing_published,
    published,
    score_cli,
    their_data,
    their_model,
    their_suite,
)
from tests.paths import ROOT

# --- hole 1: a CSV parser that swallows records ----------------------------------------------


def test_csv_with_an_unterminated_quote_fails_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, model, sha = their_model(tmp_path)
    lines = their_data(4_999).to_csv(index=False).splitlines()
    assert len(lines) == 5_000
    ref, basket, rest = lines[20].split(",", 2)  # line 21 of the file
    lines[20] = f'{ref},"{basket},{rest}'
    path = tmp_path / "quote.csv"
    path.write_text("\n".join(lines) + "\n")
    code = score_cli(tmp_path, path, model, sha)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "line 21" in err and "quote" in err, err
    assert nothing_published(tmp_path)


def test_every_csv_record_is_accounted_for_and_bad_lines_are_kept_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, model, sha = their_model(tmp_path)
    lines = their_data(3_000).to_csv(index=False).splitlines()
    long_tail = "x" * 5_000
    lines[10] = lines[10] + "," + long_tail  # an extra field, and longer than any old cut
    lines[11] = ",".join(lines[11].split(",")[:2])  # too few fields: never NaN-filled
    lines.insert(50, "")  # a blank line is not a record
    path = tmp_path / "fields.csv"
    path.write_text("\r\n".join(lines) + "\r\n")
    code = score_cli(tmp_path, path, model, sha)
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "3,000 rows in, 2,998 scored, 2 quarantined" in out.out
    bad = published(tmp_path, "badlines")
    assert sorted(bad["line"]) == [11, 12]
    assert lines[10] in set(bad["text"])  # whole, not cut
    assert len(published(tmp_path)) == 2_998


# --- hole 2: IDs come out exactly as they went in --------------------------------------------


def test_int64_ids_above_2_53_with_a_null_round_trip_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, path, sha = their_model(tmp_path)
    n = 5_000
    ids = [2**53 + 2 * i + 1 for i in range(n)]  # odd: float64 cannot hold a single one
    ids[77] = None
    data = their_data(n, ids=pd.array(ids, dtype="Int64"))
    # As another tool writes it: plain Arrow int64 with a null, no pandas metadata to lean on.
    table = pa.table(
        {"ref": pa.array(ids, pa.int64())}
        | {c: pa.array(data[c]) for c in data.columns if c != "ref"}
    )
    assert table.schema.metadata is None
    pq.write_table(table, tmp_path / "big.parquet", row_group_size=1_500)
    code = score_cli(tmp_path, tmp_path / "big.parquet", path, sha)
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "5,000 rows in, 4,999 scored, 1 quarantined" in out.out
    scores = pq.read_table(
        next((tmp_path / "out").rglob("scores/*.parquet"))
    )  # one shard: one part
    assert scores.schema.field("ref").type == pa.int64()
    expected = [i for i in ids if i is not None]
    assert scores.column("ref").to_pylist() == expected
    kept = data.drop(index=77)
    proba = model.predict_proba(kept.drop(columns="ref"))[:, 1]
    assert np.array_equal(scores.column("score").to_numpy(), proba)
    quarantined = published(tmp_path, "quarantine")
    assert quarantined["ref"].isna().tolist() == [True]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("kind", ["leading-zeros", "uuid"])
def test_text_ids_with_leading_zeros_and_uuids_are_published_as_given(
    tmp_path: Path, fmt: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import uuid

    _, model, sha = their_model(tmp_path)
    n = 1_200
    if kind == "leading-zeros":
        ids = [f"{i:08d}" for i in range(1, n + 1)]
    else:
        ids = [str(uuid.UUID(int=i * 7919)) for i in range(n)]
    data = their_data(n, ids=ids)
    path = tmp_path / f"ids.{fmt}"
    data.to_csv(path, index=False) if fmt == "csv" else data.to_parquet(path)
    code = score_cli(tmp_path, path, model, sha)
    assert code == 0, capsys.readouterr().err
    got = published(tmp_path)
    assert got["ref"].tolist() == ids
    assert got["ref"].map(type).eq(str).all()


# --- hole 3: a shard reads only the bytes the plan hashed -------------------------------------


@pytest.fixture
def planned(tmp_path: Path, make_cfg: Any) -> tuple[Any, Any, Path]:
    src = tmp_path / "input.parquet"
    table = pq.read_table(make_cfg().data.path).slice(0, 3_000)
    pq.write_table(table, src, row_group_size=1_000)
    cfg = make_cfg(data__path=str(src), score__shard_rows=1_000)
    return cfg, plan_run(cfg), src


def test_a_shard_refuses_an_input_modified_in_place_after_planning(planned: tuple) -> None:
    cfg, plan, src = planned
    body = bytearray(src.read_bytes())
    a, b = plan.shards[1]["span"]
    body[(a + b) // 2] ^= 0xFF  # same size, same footer: only shard 1's bytes differ
    src.write_bytes(bytes(body))
    score_shard(cfg, plan, 0)  # its own bytes are untouched
    with pytest.raises(InputChangedError, match="shard 1 refuses") as err:
        score_shard(cfg, plan, 1)
    assert err.value.retryable


def test_a_shard_refuses_a_grown_or_rewritten_input(planned: tuple) -> None:
    cfg, plan, src = planned
    table = pq.read_table(src)
    pq.write_table(pa.concat_tables([table, table.slice(0, 500)]), src, row_group_size=1_000)
    with pytest.raises(InputChangedError, match="size"):
        score_shard(cfg, plan, 0)
    shuffled = table.take(np.random.default_rng(0).permutation(table.num_rows))
    pq.write_table(shuffled, src, row_group_size=1_000)  # same rows, other bytes
    with pytest.raises(InputChangedError):
        score_shard(cfg, plan, 2)


def test_a_shard_refuses_a_deleted_input_clearly(planned: tuple) -> None:
    cfg, plan, src = planned
    results = [score_shard(cfg, plan, 0)]
    src.unlink()
    with pytest.raises(InputChangedError, match="no longer exists"):
        score_shard(cfg, plan, 1)
    assert not list(Path(cfg.output.uri.removeprefix("file://")).rglob("manifest.json"))
    del results


def test_the_same_planned_input_on_another_path_scores(planned: tuple, tmp_path: Path) -> None:
    """A worker that pulled the same bytes elsewhere (new inode, new mtime) is fine."""
    cfg, plan, src = planned
    moved = tmp_path / "moved.parquet"
    shutil.copyfile(src, moved)
    src.unlink()
    moved.rename(src)
    manifest = finalize_run(cfg, plan, [score_shard(cfg, plan, i) for i in range(3)])
    assert manifest.counts.rows_in == 3_000 == manifest.counts.rows_scored


# --- hole 4: ±inf never reaches a model that has no card -------------------------------------


def test_a_model_without_a_card_never_sees_non_finite_features(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, path, sha = their_model(tmp_path)
    data = their_data(1_000)
    data.loc[3, "basket"] = np.inf
    data.loc[4, "items"] = -np.inf
    data.to_parquet(tmp_path / "inf.parquet")
    assert not path.with_name("theirs.card.json").exists()
    code = score_cli(tmp_path, tmp_path / "inf.parquet", path, sha)
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "1,000 rows in, 998 scored, 2 quarantined" in out.out
    got = published(tmp_path)
    assert 4 not in set(got["ref"]) and 5 not in set(got["ref"])
    clean = data.drop(index=[3, 4])
    assert np.array_equal(
        got["score"].to_numpy(), model.predict_proba(clean.drop(columns="ref"))[:, 1]
    )
    reasons = set(published(tmp_path, "quarantine")["_reason"])
    assert reasons == {
        "basket: non-finite value (inf or -inf): inf",
        "items: non-finite value (inf or -inf): -inf",
    }


# --- hole 5: nothing fails after the commit ---------------------------------------------------


def test_output_through_a_symlink_or_dotdot_publishes_and_lists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, model, sha = their_model(tmp_path)
    their_data(500).to_parquet(tmp_path / "in.parquet")
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "out").symlink_to(real)
    assert score_cli(tmp_path, tmp_path / "in.parquet", model, sha) == 0
    assert (real / "theirs" / "r1" / "manifest.json").is_file()
    assert not list(real.rglob("attempts/*/ids"))
    dotdot = f"file://{tmp_path / 'real' / '..' / 'out'}"
    assert score_cli(tmp_path, tmp_path / "in.parquet", model, sha, "--output", dotdot) == 0
    capsys.readouterr()
    assert main(["runs", "list", "--params", str(ROOT / "params.yaml"), "--output", dotdot]) == 0
    assert "theirs/r1" in capsys.readouterr().out


def test_an_unwritable_summary_is_refused_before_anything_is_published(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, model, sha = their_model(tmp_path)
    their_data(500).to_parquet(tmp_path / "in.parquet")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    summary = blocker / "summary.json"
    code = score_cli(tmp_path, tmp_path / "in.parquet", model, sha, "--summary", str(summary))
    err = capsys.readouterr().err
    assert code == 2 and "--summary" in err, err
    assert nothing_published(tmp_path)


# --- hole 6: smaller, same rule ---------------------------------------------------------------


def test_csv_text_na_and_null_stay_text_in_the_quarantine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, model, sha = their_model(tmp_path)
    data = their_data(400).astype({"country": object})
    data.loc[7, "country"] = "NA"
    data.loc[8, "country"] = "null"
    suite = json.loads(their_suite(tmp_path).read_text())
    suite["expectations"].append(
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "country", "value_set": ["de", "fr", "it"]},
        }
    )
    (tmp_path / "suite2.json").write_text(json.dumps(suite))
    data.to_csv(tmp_path / "na.csv", index=False)
    code = score_cli(
        tmp_path,
        tmp_path / "na.csv",
        model,
        sha,
        "--set",
        f"validation.input_suite={tmp_path / 'suite2.json'}",
        "--set",
        "validation.max_quarantine_fraction=0.5",
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    q = published(tmp_path, "quarantine")
    assert q.set_index("ref").loc[["8", "9"], "country"].tolist() == ["NA", "null"]  # CSV: text


def test_a_params_file_with_a_duplicated_section_is_refused_with_line_numbers(
    tmp_path: Path,
) -> None:
    text = (ROOT / "params.yaml").read_text() + "\nscore:\n  chunk_size: 10\n"
    path = tmp_path / "params.yaml"
    path.write_text(text)
    first = next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith("score:"))
    last = len(text.splitlines()) - 1
    with pytest.raises(ConfigError, match=f"'score' appears twice.*lines {first} and {last}"):
        load_config(path)


def test_duplicate_parquet_column_names_are_a_clear_error(make_cfg: Any, tmp_path: Path) -> None:
    table = pq.read_table(make_cfg().data.path).slice(0, 100)
    dup = pa.Table.from_arrays(
        [*table.columns, table.column("age")], names=[*table.column_names, "age"]
    )
    pq.write_table(dup, tmp_path / "dup.parquet")
    with pytest.raises(InputDataError, match=r"repeats column name\(s\) \['age'\]"):
        plan_run(make_cfg(data__path=str(tmp_path / "dup.parquet")))


def test_string_classes_say_which_class_the_score_is_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = their_data(600, seed=1)
    labels = np.where(data["basket"] > 60, "churn", "stay")
    model, path, sha = their_model(tmp_path, labels)
    assert list(model.classes_) == ["churn", "stay"]
    their_data(300).to_parquet(tmp_path / "in.parquet")
    x = their_data(300).drop(columns="ref")
    assert score_cli(tmp_path, tmp_path / "in.parquet", path, sha) == 0
    manifest = json.loads(next((tmp_path / "out").rglob("manifest.json")).read_text())
    assert manifest["scores"]["score_is"] == "P(stay)"  # said, not silently assumed
    code = score_cli(
        tmp_path, tmp_path / "in.parquet", path, sha, "--set", "model.positive_class=churn",
        key="r2",
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    got = published(tmp_path, key="r2")
    assert np.array_equal(got["score"].to_numpy(), model.predict_proba(x)[:, 0])
    m2 = json.loads((tmp_path / "out" / "theirs" / "r2" / "manifest.json").read_text())
    assert m2["scores"]["positive_class"] == "churn"
    report = next((tmp_path / "out" / "theirs" / "r2").rglob("quality.json")).read_text()
    assert "P(churn)" in report


def test_a_multiclass_model_publishes_every_class_probability(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = their_data(600, seed=1)
    labels = np.select([data["basket"] < 40, data["basket"] < 80], ["low", "mid"], "high")
    model, path, sha = their_model(tmp_path, labels)
    their_data(300).to_parquet(tmp_path / "in.parquet")
    x = their_data(300).drop(columns="ref")
    code = score_cli(tmp_path, tmp_path / "in.parquet", path, sha)
    assert code == 0, capsys.readouterr().err
    got = published(tmp_path)
    proba = model.predict_proba(x)
    for k, cls in enumerate(model.classes_):
        assert np.array_equal(got[f"proba_{cls}"].to_numpy(), proba[:, k])
    assert np.array_equal(got["score"].to_numpy(), proba.max(axis=1))
    assert got["predicted_class"].tolist() == list(model.classes_[proba.argmax(axis=1)])
    manifest = json.loads(next((tmp_path / "out").rglob("manifest.json")).read_text())
    assert manifest["scores"]["kind"] == "multiclass"
    assert manifest["scores"]["classes"] == ["high", "low", "mid"]
