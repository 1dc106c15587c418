"""The all-or-nothing commit on the local backend: no-op reruns, conflicts, races, kills."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.errors import PublishConflictError, StagingLostError
from pipelines.publish.commit import list_runs, read_manifest
from pipelines.run.finalize import discard_staging, finalize_run
from pipelines.run.pipeline import run_pipeline
from pipelines.storage.open import open_store
from tests.publish.attempts import NO_GX, inputs, staged_attempts


def attempts(cfg, manifest) -> list[str]:  # type: ignore[no-untyped-def]
    root = Path(cfg.output.uri.removeprefix("file://")) / manifest.model.name / manifest.run_key
    return sorted(p.name for p in (root / "attempts").iterdir())


def test_identical_rerun_is_a_noop(make_cfg) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(**NO_GX)
    first = run_pipeline(cfg)
    again = run_pipeline(make_cfg(**NO_GX, **{"score.chunk_size": 4096}))
    assert again == first  # chunk size changes no byte of the output: nothing republished
    assert attempts(cfg, first) == [first.attempt_id]


def test_other_output_for_a_published_key_is_refused_unless_overwrite(
    make_cfg, score_file, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    first = run_pipeline(make_cfg(**NO_GX))
    other = tmp_path / "other.parquet"
    pq.write_table(pq.read_table(score_file).slice(0, 4000), other)
    with pytest.raises(PublishConflictError, match="already published from other inputs"):
        run_pipeline(make_cfg(**NO_GX, **{"data.path": str(other)}))
    cfg = make_cfg(**NO_GX, **{"data.path": str(other), "run.overwrite": True})
    replaced = run_pipeline(cfg)
    assert replaced.counts.rows_in == 4000 and replaced.attempt_id != first.attempt_id
    assert read_manifest(open_store(cfg), first.model.name, "test-run") == replaced
    assert attempts(cfg, replaced) == [replaced.attempt_id]  # the old parts are gone


@pytest.mark.parametrize("same_output", [True, False])
def test_racing_commits_one_wins(make_cfg, score_file, tmp_path, same_output) -> None:  # type: ignore[no-untyped-def]
    """Two attempts of one run key reach the commit together: exactly one manifest is written."""
    cfgs = [
        make_cfg(**NO_GX, **{"data.path": str(p)})
        for p in inputs(score_file, tmp_path, same_output)
    ]
    plans, results = staged_attempts(cfgs)
    barrier, outcomes = threading.Barrier(2), {}

    def commit(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = finalize_run(cfgs[i], plans[i], results[i])
        except PublishConflictError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=commit, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    published = read_manifest(open_store(cfgs[0]), plans[0].model.name, "test-run")
    assert published is not None
    winners = [i for i in (0, 1) if published.attempt_id == plans[i].attempt_id]
    assert len(winners) == 1
    loser = outcomes[1 - winners[0]]
    if same_output:
        assert loser == published  # the loser sees identical output: success, no rewrite
    else:
        assert isinstance(loser, PublishConflictError)
    assert attempts(cfgs[0], published) == [published.attempt_id]


@pytest.mark.parametrize("same_output", [True, False])
def test_an_attempt_that_lost_the_race_while_finishing(make_cfg, score_file, tmp_path, same_output):  # type: ignore[no-untyped-def]
    """The winner's commit removes the loser's staging (ID hashes included) before the loser
    has finished: the loser ends as a clean 'identical' or conflict, never a crash."""
    paths = inputs(score_file, tmp_path, same_output)
    cfgs = [make_cfg(**{"data.path": str(p)}) for p in paths]  # with the GX gate
    plans, results = staged_attempts(cfgs)
    winner = finalize_run(cfgs[0], plans[0], results[0])
    assert attempts(cfgs[0], winner) == [winner.attempt_id]  # the loser's staging is gone
    if same_output:
        assert finalize_run(cfgs[1], plans[1], results[1]) == winner
    else:
        with pytest.raises(PublishConflictError, match="while this attempt was finishing"):
            finalize_run(cfgs[1], plans[1], results[1])
    assert read_manifest(open_store(cfgs[0]), winner.model.name, "test-run") == winner
    assert attempts(cfgs[0], winner) == [winner.attempt_id]


def test_overwrite_never_publishes_parts_a_concurrent_commit_removed(
    make_cfg, score_file, tmp_path
):  # type: ignore[no-untyped-def]
    other = inputs(score_file, tmp_path, same_output=False)[1]
    cfgs = [
        make_cfg(**NO_GX),
        make_cfg(**NO_GX, **{"data.path": str(other), "run.overwrite": True}),
    ]
    plans, results = staged_attempts(cfgs)
    winner = finalize_run(cfgs[0], plans[0], results[0])  # removes the other attempt's parts
    with pytest.raises(PublishConflictError, match="staged part"):
        finalize_run(cfgs[1], plans[1], results[1])
    assert read_manifest(open_store(cfgs[0]), winner.model.name, "test-run") == winner
    assert run_pipeline(cfgs[1]).counts.rows_in == 3000  # run again: replaced properly


def test_killed_before_commit_leaves_nothing_visible_and_rerun_commits_once(
    params_file: Path,
) -> None:
    cmd = [sys.executable, "-m", "pipelines.cli", "score", "--params", str(params_file)]
    cmd += ["--no-validation"]
    env = {**os.environ, "BATCHSCORE_FAULT_AT": "before_commit"}
    killed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    bucket = params_file.parent / "bucket"
    assert not list(bucket.rglob("manifest.json"))
    stale = list(bucket.glob("*/cli-run/attempts/*"))
    assert len(stale) == 1  # staged parts exist, but no reader trusts them

    from pipelines.config import load_config

    cfg = load_config(params_file, env={})
    assert list_runs(open_store(cfg)) == []

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (manifest,) = list_runs(open_store(cfg))
    assert manifest.counts.rows_scored == 5003
    assert [p.name for p in bucket.glob("*/cli-run/attempts/*")] == [manifest.attempt_id]
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and list_runs(open_store(cfg)) == [manifest]


def _published_parts_verify(cfg, manifest) -> None:  # type: ignore[no-untyped-def]
    """Every part the manifest names is there, with the bytes the manifest hashed."""
    store = open_store(cfg)
    for part in manifest.parts:
        body = store.get_bytes(part.key)
        assert body is not None, f"published part {part.key} is gone"
        assert hashlib.sha256(body).hexdigest() == part.sha256, f"{part.key} changed"


@pytest.mark.parametrize("failing", ["continuing", "continued"])
def test_a_run_continuing_a_live_attempt_never_touches_its_parts(make_cfg, failing) -> None:  # type: ignore[no-untyped-def]
    """Row 9 with a slow start: the second process of a run key plans once the first has
    recorded its shards, so it continues that attempt while its owner is still finishing.

    It must stage under its own attempt: when either one fails and discards its staging, the
    other still publishes every part it names, and when both finish, the published bytes are
    the ones its manifest hashed (the other's reports do not overwrite them)."""
    cfg = make_cfg(**NO_GX)
    (first,), (first_results,) = staged_attempts([cfg])
    (second,), (second_results,) = staged_attempts([cfg])  # plans after the first's records
    assert second.resumed_from == first.attempt_id != second.attempt_id
    assert all(r.reused for r in second_results)
    store = open_store(cfg)
    if failing == "continuing":  # the second fails before its commit and discards its staging
        discard_staging(store, second)
        published = finalize_run(cfg, first, first_results)
    else:  # the first fails; the second, which copied its shards, publishes
        discard_staging(store, first)
        published = finalize_run(cfg, second, second_results)
    _published_parts_verify(cfg, published)
    assert attempts(cfg, published) == [published.attempt_id]


def test_a_commit_over_vanished_parts_is_refused_and_publishes_nothing(make_cfg) -> None:  # type: ignore[no-untyped-def]
    """Something else deleted a staged part (a lifecycle rule, a stray job): no manifest may
    point at it; the error names the part, and a rerun scores the run again and publishes."""
    cfg = make_cfg(**NO_GX)
    (plan,), (results,) = staged_attempts([cfg])
    store = open_store(cfg)
    gone = results[0].parts[0].key
    store.delete([gone])
    with pytest.raises(
        StagingLostError, match=r"staged part\(s\) of run test-run .* are gone"
    ) as info:
        finalize_run(cfg, plan, results)
    assert gone in str(info.value) and not info.value.retryable
    assert list_runs(store) == []
    published = run_pipeline(cfg)
    _published_parts_verify(cfg, published)
