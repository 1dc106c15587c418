"""params.yaml is the single source of config; env and CLI override it; bad values are explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config import load_config
from pipelines.errors import ConfigError
from tests.paths import ROOT


def test_defaults_load_and_resolve_paths_next_to_params_file() -> None:
    cfg = load_config(ROOT / "params.yaml", env={})
    assert cfg.data.path == ROOT / "data" / "score.parquet"
    assert cfg.output.uri == f"file://{ROOT / 'out' / 'bucket'}"
    assert cfg.model.card_path == ROOT / "models" / "model.card.json"
    assert len(cfg.run_key) == 10  # today's date, UTC


def test_env_then_overrides_win_in_that_order() -> None:
    env = {"BATCHSCORE__SCORE__CHUNK_SIZE": "5000", "BATCHSCORE__RUN__KEY": "from-env"}
    cfg = load_config(ROOT / "params.yaml", {"run.key": "from-cli"}, env=env)
    assert cfg.score.chunk_size == 5000
    assert cfg.run_key == "from-cli"
    assert load_config(ROOT / "params.yaml", {"run.overwrite": "true"}, env={}).run.overwrite


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"score.chunk_size": "-5"}, "score.chunk_size = -5: Input should be greater than"),
        ({"score.chunk_sise": 5}, "score.chunk_sise: unknown key; allowed here: chunk_size"),
        ({"output.uri": "ftp://x"}, "must start with file:// (a local folder) or s3://"),
        ({"model.sha256": "abc"}, "model.sha256 = 'abc': Value error, must be 64 hex"),
        ({"run.key": "../etc"}, "run.key = '../etc'"),
        ({"validation.max_quarantine_fraction": 2}, "less than or equal to 1"),
        ({"train.model": "svm"}, "train.model = 'svm': Input should be 'hgb' or 'logreg'"),
    ],
)
def test_bad_values_name_the_key_the_value_and_what_is_allowed(
    override: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "params.yaml", override, env={})
    assert expected in str(err.value)


def test_bad_files_are_explained(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", env={})
    bad = tmp_path / "params.yaml"
    bad.write_text("score: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, env={})
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_config(bad, env={})
    with pytest.raises(ConfigError, match="must be section.key"):
        load_config(ROOT / "params.yaml", {"chunk_size": 3}, env={})


def test_dates_and_numbers_stay_text_for_keys_and_revisions(tmp_path: Path) -> None:
    """YAML reads 2026-11-23 as a date: a run key or a git revision must stay text."""
    params = tmp_path / "params.yaml"
    params.write_text("run:\n  key: 2026-11-23\ndata:\n  rev: 1234\n")
    cfg = load_config(params, env={"BATCHSCORE__DATA__MD5": "123"})
    assert (cfg.run_key, cfg.data.rev, cfg.data.md5) == ("2026-11-23", "1234", "123")
    assert load_config(params, {"run.key": "2026-12-01"}, env={}).run_key == "2026-12-01"
