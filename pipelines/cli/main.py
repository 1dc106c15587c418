"""The `batchscore` command group and `main()`, its entry point and exit codes.

Exit codes: 0 done; 2 a usage or input error (a mistyped command or flag, a bad `--set` or
param, bad data, a failed gate, a publish conflict: anything the user can fix); 1 the machine
(disk, permissions); 130 interrupted (Ctrl-C); 143 stopped by SIGTERM. Every error is one
message on stderr and nothing is published.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from pipelines import __version__
from pipelines.cli.options import SuggestingGroup
from pipelines.errors import BatchscoreError

EXIT_MACHINE, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 130, 143
NOISY_LOGGERS = (
    "great_expectations",
    "great_expectations.data_context.types.base",  # "ephemeral docs site" on every call
    "botocore",
    "urllib3",
    "s3transfer",
    "matplotlib",
)

EPILOG = """\b
Configuration: every value comes from a params file (--params, $BATCHSCORE_PARAMS, else
./params.yaml if there is one, else built-in defaults). Override any key with
--set section.key=value (repeatable) or BATCHSCORE__SECTION__KEY=value; flags such as --input
are shortcuts for --set. Paths on the command line are relative to the current folder.

\b
Examples:
  batchscore generate && batchscore train && batchscore score
  batchscore score --input data.parquet --model model.skops --model-sha256 SHA \\
    --id-column patient_id --output file://out
  batchscore validate --input suspicious.csv
  batchscore runs list

Run `batchscore COMMAND --help` for a command's flags and examples.
"""


# name -> module of pipelines.cli that defines it: imported when the command runs, so that
# `batchscore runs list` or `--help` does not pay for scikit-learn, GX or matplotlib.
COMMANDS = {
    "generate": "data",
    "train": "data",
    "validate": "score",
    "score": "score",
    "runs": "runs",
    "pull": "data",
    "init": "project",
    "suite": "project",
    "labels": "labels",
    "baseline": "baseline",
    "model": "model",
    "monitor": "monitor",
}


class LazyGroup(SuggestingGroup):
    """The command group; a command's module is imported only when that command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        command = getattr(importlib.import_module(f"pipelines.cli.{module}"), cmd_name)
        assert isinstance(command, click.Command), cmd_name
        return command


@click.group(
    cls=LazyGroup,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(
    __version__, "--version", prog_name="batchscore", message="%(prog)s %(version)s"
)
def cli() -> None:
    """Batch scoring for scikit-learn models: validate, score in chunks, publish."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `batchscore` command line; return its exit code (see the module docstring)."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from pipelines.termination import Terminated, install

    install()
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return int(cli.main(args, prog_name="batchscore", standalone_mode=False) or 0)
    except click.ClickException as exc:  # usage: the command's usage line, then the error
        exc.show()
        return EXIT_USAGE
    except BatchscoreError as exc:
        print(f"batchscore: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # the machine, not the data: disk, permissions, a vanished folder
        print(
            f"batchscore: error: {exc.strerror or exc} ({exc.filename or 'no file named'}); "
            "nothing was published",
            file=sys.stderr,
        )
        return EXIT_MACHINE
    except (click.Abort, KeyboardInterrupt):
        print("batchscore: interrupted; nothing was published", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("batchscore: stopped by SIGTERM; nothing was published", file=sys.stderr)
        return EXIT_TERMINATED


def entry() -> NoReturn:
    """The `batchscore` console script: `main()`, then exit without tearing the interpreter down.

    A scoring process holds hundreds of thousands of objects (GX, scikit-learn, pandas); freeing
    them one by one at exit took 1.5-3 s after the work was done and the result was printed.
    Exit handlers still run (atexit: temporary folders, logging) and the output is flushed
    first; only the object-by-object teardown is skipped.
    """
    exit_now(main())


def exit_now(code: int) -> NoReturn:
    """Exit with `code` the way the console script does: exit handlers, flush, `os._exit`."""
    try:
        atexit._run_exitfuncs()  # what a normal exit runs first (logging.shutdown among them)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed pipe: nothing more to say
                stream.flush()
        os._exit(code)
