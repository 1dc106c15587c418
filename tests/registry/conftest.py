"""The registry fixtures (tests/mlflow_fixtures.py) for the tests in this folder."""

from tests.mlflow_fixtures import (  # noqa: F401 - fixtures, found by pytest by name
    mlflow_server,
    registry_template,
    server_registry,
    sqlite_registry,
)
