"""params.yaml is the single source of config; env and CLI override it; bad values are explained,
with where they came from; without a params file, built-in defaults apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config import DEFAULT_CRON, load_config
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
        ({"score.chunk_sise": 5}, "unknown key score.chunk_sise; did you mean score.chunk_size?"),
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


def test_without_a_params_file_the_built_in_defaults_apply_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(env={})
    assert cfg.root == tmp_path
    assert cfg.output.uri == f"file://{tmp_path / 'out'}"
    assert cfg.validation.input_suite is None  # no input gate until you make a suite
    assert cfg.validation.output_suite is None  # the built-in output suite
    assert cfg.model.sha256 is None and cfg.schedule.cron == DEFAULT_CRON
    with pytest.raises(ConfigError, match="nope.yaml not found"):
        load_config(env={"BATCHSCORE_PARAMS": str(tmp_path / "nope.yaml")})
    (tmp_path / "params.yaml").write_text("run:\n  key: from-file\n")
    assert load_config(env={}).run_key == "from-file"  # ./params.yaml, when there is one


def test_paths_are_relative_to_where_they_were_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file's paths to its folder; env paths to the cwd; CLI paths to `relative_to`."""
    project, here = tmp_path / "project", tmp_path / "here"
    project.mkdir()
    here.mkdir()
    params = project / "params.yaml"
    params.write_text("data:\n  path: in.parquet\nmodel:\n  path: m.skops\n")
    monkeypatch.chdir(here)
    env = {"BATCHSCORE__MODEL__CARD": "card.json", "BATCHSCORE__OUTPUT__URI": "file://o"}
    cfg = load_config(params, env=env)
    assert (cfg.data.path, cfg.model.path) == (project / "in.parquet", project / "m.skops")
    assert cfg.model.card == here / "card.json" and cfg.output.uri == f"file://{here / 'o'}"
    cli = {"data.path": "x.parquet", "output.uri": "file://out", "model.path": "2026"}
    cfg = load_config(params, cli, env={}, relative_to=here)
    assert cfg.data.path == here / "x.parquet" and cfg.output.uri == f"file://{here / 'out'}"
    assert cfg.model.path == here / "2026"  # a path stays text, never the number 2026
    assert (
        load_config(params, {"data.path": "x.parquet"}, env={}).data.path == project / "x.parquet"
    )
    s3 = load_config(params, {"output.uri": "s3://b/p"}, env={}, relative_to=here)
    assert s3.output.uri == "s3://b/p"


def test_a_bad_value_names_where_it_came_from(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("score:\n  workers: 1\n  chunk_size: abc\n")
    with pytest.raises(ConfigError) as err:
        load_config(params, env={})
    assert f"score.chunk_size = 'abc' (from {params}, line 3): Input should be" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(params, env={"BATCHSCORE__SCORE__WORKERS": "-1"})
    assert "(from environment variable BATCHSCORE__SCORE__WORKERS)" in str(err.value)
    assert "2 invalid params:" in str(err.value)
    given = {"score.chunk_size": "abc"}
    origins = {"score.chunk_size": "--set score.chunk_size=abc"}
    with pytest.raises(ConfigError) as err:
        load_config(params, given, env={}, origins=origins)
    assert "score.chunk_size = 'abc' (from --set score.chunk_size=abc): Input should be" in str(
        err.value
    )
    with pytest.raises(ConfigError) as err:
        load_config(params, env={"BATCHSCORE__SCROE__WORKERS": "1"})
    assert "unknown section scroe; did you mean score? (from environment variable" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(params, {"score.zzz": 1}, env={})
    assert "unknown key score.zzz; allowed: score.chunk_size, score.workers" in str(err.value)


def test_a_run_key_with_a_trailing_newline_is_refused() -> None:
    """`$` also matches before a final newline: the key must match as a whole."""
    with pytest.raises(ConfigError, match="run.key"):
        load_config(ROOT / "params.yaml", {"run.key": '"2026-01-15\\n"'}, env={})
