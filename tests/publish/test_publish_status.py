"""`publish_run` says what its commit did, and whether the published output is this plan's.

The DAG reports that status and announces new output to downstream DAGs from `newly_published`;
it no longer works either out itself (it said "committed" for any manifest carrying the plan's
attempt id, which every retry of the publish task shares).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.publish.commit import read_manifest
from pipelines.run.finalize import finalize_run, publish_run
from pipelines.run.plan import plan_run
from pipelines.storage.open import open_store
from tests.publish.attempts import NO_GX, inputs, staged_attempts


def _missing_parts(cfg, manifest) -> list[str]:  # type: ignore[no-untyped-def]
    root = Path(cfg.output.uri.removeprefix("file://"))
    return [p.key for p in manifest.parts if not (root / p.key).is_file()]


@pytest.mark.parametrize("gates", [False, True], ids=["no-gx", "gx"])
def test_a_retry_of_a_committed_publish_reports_identical_and_keeps_the_parts(
    make_cfg, gates: bool
) -> None:  # type: ignore[no-untyped-def]
    """Try 1 committed, then its task failed (e.g. the XCom push); try 2 reuses the same plan."""
    cfg = make_cfg(**({} if gates else NO_GX))
    (plan,), (results,) = staged_attempts([cfg])
    first = publish_run(cfg, plan, results)
    assert (first.status, first.newly_published) == ("committed", True)
    assert first.manifest_uri == open_store(cfg).url(f"{plan.model.name}/test-run/manifest.json")

    retry = publish_run(cfg, plan, results)
    assert retry.status == "identical"  # was reported as "committed"
    assert retry.newly_published  # still this run's output: downstream has not been told yet
    assert retry.manifest == first.manifest
    # With the gates on, the retry used to fail on the ID hashes try 1 had deleted and, in its
    # clean-up, delete the published parts under the shared attempt prefix.
    assert _missing_parts(cfg, first.manifest) == []
    assert read_manifest(open_store(cfg), plan.model.name, "test-run") == first.manifest
    assert finalize_run(cfg, plan, results) == first.manifest  # the old entry point, same answer


def test_another_attempt_with_identical_output_is_identical_and_not_new(
    make_cfg, score_file, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    cfgs = [make_cfg(**NO_GX, **{"data.path": str(p)}) for p in inputs(score_file, tmp_path, True)]
    plans, results = staged_attempts(cfgs)  # two plans of one run, both staged before a commit
    winner = publish_run(cfgs[0], plans[0], results[0])
    loser = publish_run(cfgs[1], plans[1], results[1])
    assert (winner.status, winner.newly_published) == ("committed", True)
    assert (loser.status, loser.newly_published) == ("identical", False)
    assert loser.manifest == winner.manifest


def test_rerun_dry_run_and_overwrite_statuses(make_cfg, score_file, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(**NO_GX)
    (plan,), (results,) = staged_attempts([cfg])
    first = publish_run(cfg, plan, results)

    rerun = plan_run(cfg)  # a new run of a published run key: nothing to score
    assert rerun.already_published
    again = publish_run(cfg, rerun, [])
    assert (again.status, again.newly_published) == ("already_published", False)
    assert again.manifest == first.manifest

    dry = make_cfg(**NO_GX, **{"run.dry_run": True})
    (dry_plan,), (dry_results,) = staged_attempts([dry])
    dry_run = publish_run(dry, dry_plan, dry_results)
    assert (dry_run.status, dry_run.newly_published, dry_run.manifest_uri) == (
        "dry_run",
        False,
        None,
    )

    other = inputs(score_file, tmp_path, same_output=False)[1]
    over = make_cfg(**NO_GX, **{"data.path": str(other), "run.overwrite": True})
    (over_plan,), (over_results,) = staged_attempts([over])
    replaced = publish_run(over, over_plan, over_results)
    assert (replaced.status, replaced.newly_published) == ("replaced", True)
    assert replaced.manifest.counts.rows_in == 3000
