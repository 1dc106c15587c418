"""pull_input against a real git + DVC repo whose remote is the moto S3 server."""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import Settings
from pipelines.data.dvc_files import file_md5
from pipelines.data.pull import PulledInput, pull_input
from pipelines.errors import DataPullError, InputDataError
from tests.dvc_fixtures import DVC_BUCKET, V1, V2, DvcRepo, md5_of


def test_pull_at_pinned_rev(pushed: DvcRepo, tmp_path: Path) -> None:
    pulled = pull_input(pushed.settings(rev="v1"), tmp_path / "pulls")

    assert pulled.path.read_text() == V1
    assert pulled.md5 == md5_of(V1)
    assert pulled.git_rev == pushed.v1
    assert pulled.recorded_in == "data/score.csv.dvc"
    assert pulled.path.is_relative_to(tmp_path / "pulls")
    # the working tree (at v2) is untouched; a second call reuses the verified checkout
    assert (pushed.root / "data" / "score.csv").read_text() == V2
    again = pull_input(pushed.settings(rev=pushed.v1[:10], md5=md5_of(V1)), tmp_path / "pulls")
    assert again == pulled
    assert pull_input(pushed.settings(rev="main"), tmp_path / "pulls").md5 == md5_of(V2)


def test_only_the_most_recently_used_checkouts_are_kept(pushed: DvcRepo, tmp_path: Path) -> None:
    pulls = tmp_path / "pulls"
    first = pull_input(pushed.settings(rev="v1"), pulls, keep_checkouts=2)
    second = pull_input(pushed.settings(rev="main"), pulls, keep_checkouts=2)
    assert first.path.is_file() and second.path.is_file()
    again = pull_input(pushed.settings(rev="v1"), pulls, keep_checkouts=1)  # reused, then pruned
    assert again == first and again.path.read_text() == V1
    workspace = first.path.parents[2]  # <pulls>/<repo>/<sha>/data/score.csv
    assert sorted(p.name for p in workspace.iterdir() if p.is_dir()) == [pushed.v1]
    assert not second.path.exists()


def test_file_inside_a_tracked_directory(pushed: DvcRepo, tmp_path: Path) -> None:
    cfg = pushed.settings(path="tables/part-1.csv", rev=pushed.v2)
    pulled = pull_input(cfg, tmp_path / "pulls")
    assert pulled.path.read_text() == V2
    assert pulled.md5 == md5_of(V2)
    assert pulled.recorded_in == "tables.dvc (tables/)"


def test_corrupted_remote_object_is_caught(pushed: DvcRepo, s3_client: Any, tmp_path: Path) -> None:
    key = pushed.remote_key(md5_of(V1))
    s3_client.put_object(Bucket=DVC_BUCKET, Key=key, Body=V1.replace("0.5", "0.6").encode())
    with pytest.raises(DataPullError, match="corrupted or was overwritten") as info:
        pull_input(pushed.settings(rev="v1"), tmp_path / "pulls")
    assert md5_of(V1) in str(info.value) and not info.value.retryable
    assert not list((tmp_path / "pulls").glob(f"*/{pushed.v1}"))  # bad checkout not kept

    # once the remote is repaired, the next attempt pulls the good bytes
    s3_client.put_object(Bucket=DVC_BUCKET, Key=key, Body=V1.encode())
    assert pull_input(pushed.settings(rev="v1"), tmp_path / "pulls").md5 == md5_of(V1)


def test_missing_remote_object_is_caught(pushed: DvcRepo, s3_client: Any, tmp_path: Path) -> None:
    s3_client.delete_object(Bucket=DVC_BUCKET, Key=pushed.remote_key(md5_of(V1)))
    with pytest.raises(DataPullError, match="data/score.csv") as info:
        pull_input(pushed.settings(rev="v1"), tmp_path / "pulls")
    assert "dvc push" in str(info.value)


def test_pinned_md5_must_match_the_revision(pushed: DvcRepo, tmp_path: Path) -> None:
    with pytest.raises(DataPullError, match=f"data.md5 pins {'0' * 32}.*records md5"):
        pull_input(pushed.settings(rev="v1", md5="0" * 32), tmp_path / "pulls")


def test_unknown_revision(pushed: DvcRepo, tmp_path: Path) -> None:
    with pytest.raises(DataPullError, match="'no-such-tag' not found"):
        pull_input(pushed.settings(rev="no-such-tag"), tmp_path / "pulls")


def test_concurrent_pulls_in_one_workspace_serialize(pushed: DvcRepo, tmp_path: Path) -> None:
    results: list[PulledInput | BaseException] = []

    def pull() -> None:
        try:
            results.append(pull_input(pushed.settings(rev="v1"), tmp_path / "pulls"))
        except BaseException as exc:  # surfaced by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=pull) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 2 and all(isinstance(r, PulledInput) for r in results), results
    assert results[0] == results[1]


def test_working_tree_input(
    dvc_repo: DvcRepo, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    pulled = pull_input(dvc_repo.settings())
    assert pulled == PulledInput(
        path=dvc_repo.root / "data" / "score.csv",
        git_rev=dvc_repo.v2,
        md5=md5_of(V2),
        recorded_in="data/score.csv.dvc",
    )
    with pytest.raises(DataPullError, match="data.md5 pins"):
        pull_input(dvc_repo.settings(md5=md5_of(V1)))

    plain = tmp_path / "plain"  # not a git repo, not tracked by DVC
    (plain / "data").mkdir(parents=True)
    (plain / "data" / "score.csv").write_text(V1 + "9,9\n")
    cfg = Settings.model_validate({"data": {"path": "data/score.csv"}, "root": plain})
    with caplog.at_level(logging.WARNING):
        local = pull_input(cfg)
    assert local.git_rev is None and local.md5 == md5_of(V1 + "9,9\n")
    assert local.recorded_in is None

    with pytest.raises(InputDataError, match="not found"):
        pull_input(Settings.model_validate({"data": {"path": "nope.csv"}, "root": plain}))


def test_legacy_dvc2_hash_normalises_line_endings(tmp_path: Path) -> None:
    crlf = tmp_path / "x.csv"
    crlf.write_bytes(b"a,b\r\n1,2\r\n")
    assert file_md5(crlf) == hashlib.md5(b"a,b\r\n1,2\r\n").hexdigest()
    assert file_md5(crlf, "md5-dos2unix") == hashlib.md5(b"a,b\n1,2\n").hexdigest()
