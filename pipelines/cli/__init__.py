"""`batchscore`: the command line over the pipelines library (used by dvc.yaml and people).

Every command loads the same typed config (params file, then BATCHSCORE__* env vars, then
`--set`/flags) and calls the same functions the Airflow DAG calls. `main` is the entry point.
"""

from pipelines.cli.main import main

__all__ = ["main"]
