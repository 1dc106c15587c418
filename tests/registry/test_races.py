"""Two clients moving the same alias at once, on the real SQLite registry: no move is lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.registry.aliases import history, holder, promote
from pipelines.registry.errors import AliasConflictError
from pipelines.registry.versions import register
from tests.mlflow_fixtures import RegistryUnderTest
from tests.registry.models import tiny_skops

LOCK = "batchscore.lock."


def _race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together; each result or the exception it raised."""
    start, results = threading.Barrier(len(calls)), [None] * len(calls)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # the outcome under test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def _three_versions(registry: RegistryUnderTest, tmp_path: Path) -> None:
    for seed in (1, 2, 3):
        (tmp_path / str(seed)).mkdir()
        register(tiny_skops(tmp_path / str(seed), seed), "churn", registry.settings, registry.root)
    promote("churn", 1, registry.settings, registry.root, who="setup")


def test_racing_moves_that_expect_the_same_holder_one_wins_one_fails_loudly(
    sqlite_registry: RegistryUnderTest, tmp_path: Path
) -> None:
    s, root = sqlite_registry.settings, sqlite_registry.root
    _three_versions(sqlite_registry, tmp_path)
    seen = holder("churn", "champion", s, root)  # both clients read v1, then move
    results = _race(
        lambda: promote("churn", 2, s, root, who="alice", expected_from=seen),
        lambda: promote("churn", 3, s, root, who="bob", expected_from=seen),
    )
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) == 1 and len(lost) == 1, results
    assert isinstance(lost[0], AliasConflictError)
    text = str(lost[0])
    assert "moved by someone else meanwhile" in text and f"by {won[0].who}" in text
    assert f"from v1 to v{won[0].to}" in text and "rerun" in text
    moves = history("churn", s, root)
    assert [(m.who, m.from_, m.to) for m in moves] == [
        ("setup", None, 1),
        (won[0].who, 1, won[0].to),
    ]
    assert holder("churn", "champion", s, root) == won[0].to


def test_racing_moves_without_expectations_are_both_recorded_in_order(
    sqlite_registry: RegistryUnderTest, tmp_path: Path
) -> None:
    s, root = sqlite_registry.settings, sqlite_registry.root
    _three_versions(sqlite_registry, tmp_path)
    results = _race(
        lambda: promote("churn", 2, s, root, who="alice"),
        lambda: promote("churn", 3, s, root, who="bob"),
    )
    assert not any(isinstance(r, Exception) for r in results), results
    moves = history("churn", s, root)
    assert [m.seq for m in moves] == [1, 2, 3]
    assert moves[1].from_ == 1 and moves[2].from_ == moves[1].to  # a chain: nothing lost
    assert {moves[1].to, moves[2].to} == {2, 3}
    assert holder("churn", "champion", s, root) == moves[2].to
    assert not [n for n in _model_names(sqlite_registry) if n.endswith(".batchscore-lock")]


def test_a_lock_left_by_a_crashed_client_expires(
    sqlite_registry: RegistryUnderTest, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    s, root = sqlite_registry.settings, sqlite_registry.root
    _three_versions(sqlite_registry, tmp_path)
    client = MlflowClient(tracking_uri=sqlite_registry.uri, registry_uri=sqlite_registry.uri)
    client.create_registered_model(
        "churn.batchscore-lock",
        tags={f"{LOCK}token": "t", f"{LOCK}who": "crashed", f"{LOCK}epoch": "0"},
    )
    assert promote("churn", 2, s, root).to == 2  # broken as stale (epoch 0), then taken
    fresh = s.model_copy(update={"lock_wait_s": 0.2})
    client.create_registered_model(
        "churn.batchscore-lock",
        tags={f"{LOCK}who": "carol", f"{LOCK}epoch": repr(time.time())},
    )
    try:
        promote("churn", 3, fresh, root)
    except AliasConflictError as exc:
        assert "being moved by carol" in str(exc)
    else:
        raise AssertionError("a fresh lock must make the move wait, then fail")
    assert holder("churn", "champion", s, root) == 2


def _model_names(registry: RegistryUnderTest) -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)
    return [m.name for m in client.search_registered_models()]
