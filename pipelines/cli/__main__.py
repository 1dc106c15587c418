"""`python -m pipelines.cli`: the same as the `batchscore` command."""

from pipelines.cli.main import entry

entry()
