"""Register, promote, resolve, fetch, roll back: on the embedded SQLite registry and against a
real `mlflow server` whose artifacts live on moto S3. Real models, real bytes, real MLflow."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pipelines.errors import ModelIntegrityError
from pipelines.registry.aliases import history, promote, rollback
from pipelines.registry.pin import ModelPin, fetch, resolve
from pipelines.registry.settings import RegistrySettings
from pipelines.registry.versions import list_versions, register
from tests.mlflow_fixtures import ARTIFACT_BUCKET, RegistryUnderTest
from tests.registry.models import flip_byte, tiny_skops
from tests.s3_fixtures import raw_client


@pytest.fixture(params=["sqlite", "server"])
def registry(request: pytest.FixtureRequest) -> RegistryUnderTest:
    return request.getfixturevalue(f"{request.param}_registry")


@pytest.fixture
def name() -> str:
    return f"churn-{uuid.uuid4().hex[:8]}"  # the server is shared by the whole session


@pytest.fixture
def two_models(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "v1", tmp_path / "v2"
    first.mkdir(), second.mkdir()
    return tiny_skops(first, seed=1), tiny_skops(second, seed=2)


def test_promote_resolve_rollback_and_history(
    registry: RegistryUnderTest, name: str, two_models: tuple[Path, Path], tmp_path: Path
) -> None:
    s, root = registry.settings, registry.root
    a, b = (register(p, name, s, root, description=f"fit {i}") for i, p in enumerate(two_models))
    assert (a.version, b.version) == (1, 2)
    assert a.card == "model.card.json" and a.baseline == "model.baseline.json"
    assert a.training_data_sha256 == f"{1:064x}" and a.sklearn_version
    assert register(two_models[0], name, s, root).version == 1  # same bytes: no new version

    cache = tmp_path / "cache"
    pins = []
    for version, why in [(1, "first"), (2, "better")]:
        promote(name, version, s, root, reason=why, who="alice")
        pins.append(resolve(f"models:/{name}@champion", s, root))
        assert pins[-1].version == version and pins[-1].alias == "champion"
    rollback(name, s, root, reason="v2 drifted", who="bob")
    pins.append(resolve(f"models:/{name}@champion", s, root))
    assert [p.version for p in pins] == [1, 2, 1]

    for pin, source in zip(pins, [*two_models, two_models[0]], strict=True):
        got = fetch(pin, s, root, cache)
        assert got.model_path.read_bytes() == source.read_bytes()
        assert (
            got.card_path
            and got.card_path.read_bytes() == source.with_name("model.card.json").read_bytes()
        )
        assert got.baseline_path and got.baseline_path.name == "model.baseline.json"
        assert got.model_path.parent.name == f"{pin.version}-{pin.sha256[:12]}"

    moves = [m.to_dict() for m in history(name, s, root)]
    assert [(m["action"], m["from"], m["to"], m["who"], m["why"]) for m in moves] == [
        ("promote", None, 1, "alice", "first"),
        ("promote", 1, 2, "alice", "better"),
        ("rollback", 2, 1, "bob", "v2 drifted"),
    ]
    assert [m["seq"] for m in moves] == [1, 2, 3] and all(m["at"].endswith("Z") for m in moves)
    assert set(moves[0]) == {"seq", "at", "who", "alias", "from", "to", "why", "action"}
    listed = list_versions(name, s, root)
    assert [(v.version, v.aliases) for v in listed] == [(1, ("champion",)), (2, ())]
    assert pins[0].registry_uri == registry.uri


def test_an_alias_moved_after_resolve_does_not_change_the_fetched_version(
    registry: RegistryUnderTest, name: str, two_models: tuple[Path, Path], tmp_path: Path
) -> None:
    s, root = registry.settings, registry.root
    for path in two_models:
        register(path, name, s, root)
    promote(name, 1, s, root)
    pin = ModelPin.from_json(resolve(f"models:/{name}@champion", s, root).to_json())
    promote(name, 2, s, root)  # between plan and shards
    got = fetch(pin, s, root, tmp_path / "shard-cache")
    assert got.model_path.read_bytes() == two_models[0].read_bytes()
    assert resolve(f"models:/{name}@champion", s, root).version == 2


def _tamper(registry: RegistryUnderTest, pin: ModelPin) -> None:
    """Flip one byte of the stored model artifact, where the registry keeps it."""
    [info] = [v for v in list_versions(pin.name, registry.settings, registry.root)]
    if registry.s3_endpoint is None:
        [stored] = (registry.root / "mlartifacts" / str(info.run_id)).rglob(pin.file)
        stored.write_bytes(flip_byte(stored.read_bytes()))
        return
    s3 = raw_client(registry.s3_endpoint)
    listed = s3.list_objects_v2(Bucket=ARTIFACT_BUCKET, Prefix="artifacts/")["Contents"]
    [key] = [
        o["Key"] for o in listed if o["Key"].endswith(f"{info.run_id}/artifacts/model/{pin.file}")
    ]
    body = s3.get_object(Bucket=ARTIFACT_BUCKET, Key=key)["Body"].read()
    s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=flip_byte(body))


def test_a_tampered_artifact_is_refused_before_anything_loads_it(
    registry: RegistryUnderTest,
    name: str,
    two_models: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import skops.io

    s, root = registry.settings, registry.root
    register(two_models[0], name, s, root)
    pin = resolve(f"models:/{name}/1", s, root)
    _tamper(registry, pin)

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("skops.io.load reached with a tampered file")

    monkeypatch.setattr(skops.io, "load", never)
    cache = tmp_path / "cache"
    with pytest.raises(ModelIntegrityError) as info:
        fetch(pin, s, root, cache)
    text = str(info.value)
    assert pin.sha256 in text and "version 1" in text and "Fix:" in text
    [kept] = (cache / name / "quarantine").iterdir()
    actual = kept.name.split("-")[1]
    assert actual in text and actual != pin.sha256[:12]
    assert not (cache / name / f"1-{pin.sha256[:12]}").exists()  # nothing usable left behind


def test_a_cached_copy_is_reused_without_the_registry_and_rechecked(
    sqlite_registry: RegistryUnderTest, name: str, two_models: tuple[Path, Path], tmp_path: Path
) -> None:
    s, root = sqlite_registry.settings, sqlite_registry.root
    register(two_models[0], name, s, root)
    pin = resolve(f"models:/{name}/1", s, root)
    cache = tmp_path / "cache"
    first = fetch(pin, s, root, cache)
    dead = RegistrySettings(uri="http://127.0.0.1:9/", http_max_retries=0, http_timeout_s=1)
    assert fetch(pin, dead, root, cache) == first  # no registry call for a verified copy
    first.model_path.write_bytes(flip_byte(first.model_path.read_bytes()))
    again = fetch(pin, s, root, cache)  # damaged cache: quarantined, downloaded again
    assert again.model_path.read_bytes() == two_models[0].read_bytes()
    assert len(list((cache / name / "quarantine").iterdir())) == 1
