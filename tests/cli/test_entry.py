"""The console script's exit: the code of `main`, exit handlers run, output flushed, and no
interpreter teardown (which took seconds after a scoring run's work was done)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.cli.tiny import BATCHSCORE


def _entry(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    flag = tmp_path / "atexit-ran"
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: open({str(flag)!r}, 'w').write('ran'))\n"
        "from pipelines.cli.main import entry\n"
        f"sys.argv = ['batchscore', *{list(argv)!r}]\n"
        "entry()\n"
        "raise AssertionError('entry returned')\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_exit_code_output_and_exit_handlers(tmp_path: Path) -> None:
    done = _entry(tmp_path, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("batchscore ")
    assert (tmp_path / "atexit-ran").read_text() == "ran"


def test_a_usage_error_keeps_its_exit_code(tmp_path: Path) -> None:
    done = _entry(tmp_path, "scroe")
    assert done.returncode == 2
    assert "Did you mean score?" in done.stderr
    assert (tmp_path / "atexit-ran").is_file()


def test_output_piped_to_a_file_is_complete(tmp_path: Path) -> None:
    """Help text through a pipe (block-buffered) arrives whole before the process ends."""
    from click.testing import CliRunner

    from pipelines.cli.main import cli

    done = subprocess.run([BATCHSCORE, "score", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    assert "--output URI" in done.stdout
    expected = CliRunner().invoke(cli, ["score", "--help"], prog_name="batchscore").output
    assert done.stdout.split() == expected.split()  # every word, whatever the wrapping
