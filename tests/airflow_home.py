"""A throwaway Airflow home for test processes that import Airflow in-process (DagBag, dag.test).

Airflow reads its configuration when it is first imported, so call `use_throwaway_home` before
anything imports it. It also puts dags/ on sys.path, as Airflow's dag bundle does for the
dag-processor and every task process (the DAG file imports `batchscore_support` by name).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

from tests.paths import DAGS


def use_throwaway_home() -> None:
    if "airflow" not in sys.modules:
        home = Path(tempfile.mkdtemp(prefix="batchscore-airflow-home-"))
        atexit.register(shutil.rmtree, home, ignore_errors=True)
        os.environ.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW_CONFIG": str(home / "airflow.cfg"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            }
        )
    if str(DAGS) not in sys.path:
        sys.path.append(str(DAGS))
