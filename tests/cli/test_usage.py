"""Usage and input errors: one message, the command's usage, a suggestion, and always exit 2.

`main` is the real entry point (the same function `batchscore` runs), called in this process
with a real argv; the config errors load real params files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.cli import main


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No params.yaml around and no BATCHSCORE_* variables: built-in defaults."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("BATCHSCORE")]:
        monkeypatch.delenv(name)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_mistyped_flag_suggests_the_right_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "score", "--inptu", "data.parquet")
    assert code == 2
    assert "Did you mean --input" in err
    assert "Usage: batchscore score [OPTIONS]" in err  # the command's own usage


def test_a_mistyped_command_suggests_the_right_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "scroe")
    assert (code, "No such command 'scroe'. Did you mean score?" in err) == (2, True)
    code, _, err = run(capsys, "runs", "lsit")
    assert (code, "Did you mean list?" in err) == (2, True)
    assert "Usage: batchscore runs" in err
    code, _, err = run(capsys, "frobnicate")
    assert code == 2 and "Commands: " in err and "score" in err


def test_set_without_equals_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "score", "--set", "score.chunk_size")
    assert code == 2  # was 1 with the argparse CLI
    assert "expects KEY=VALUE" in err and "'score.chunk_size'" in err


def test_a_mistyped_param_key_suggests_the_right_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "score", "--set", "score.chunk_sise=5")
    assert code == 2
    assert "unknown key score.chunk_sise; did you mean score.chunk_size?" in err
    assert "(from --set score.chunk_sise=5)" in err
    code, _, err = run(capsys, "score", "--set", "scroe.workers=2")
    assert code == 2 and "unknown section scroe; did you mean score?" in err


def test_a_bad_value_names_the_flag_the_variable_or_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "score", "--set", "score.chunk_size=abc")
    assert code == 2
    assert (
        "score.chunk_size = 'abc' (from --set score.chunk_size=abc): Input should be a valid" in err
    )
    code, _, err = run(capsys, "score", "--model-sha256", "abc")
    assert code == 2 and "model.sha256 = 'abc' (from --model-sha256 abc)" in err
    monkeypatch.setenv("BATCHSCORE__SCORE__CHUNK_SIZE", "abc")
    code, _, err = run(capsys, "score")
    assert code == 2
    assert "(from environment variable BATCHSCORE__SCORE__CHUNK_SIZE)" in err
    monkeypatch.delenv("BATCHSCORE__SCORE__CHUNK_SIZE")
    params = tmp_path / "mine.yaml"
    params.write_text("# mine\nscore:\n  workers: 1\n  chunk_size: abc\n")
    code, _, err = run(capsys, "score", "--params", str(params))
    assert code == 2 and f"(from {params}, line 4)" in err
    assert err.count("\n") <= 3 and "Traceback" not in err


def test_a_flag_of_the_wrong_type_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "score", "--chunk-size", "lots")
    assert code == 2 and "Invalid value for '--chunk-size'" in err


@pytest.mark.parametrize("command", ["generate", "train", "score", "validate", "pull", "runs"])
def test_each_command_says_what_it_does_with_an_example(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert f"Usage: batchscore {command}" in out
    assert "Examples:" in out and f"batchscore {command}" in out.split("Examples:")[1]


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "Commands:" in out and "BATCHSCORE__SECTION__KEY" in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("batchscore ")
    code, _, err = run(capsys)
    assert code == 2 and "Usage: batchscore" in err
