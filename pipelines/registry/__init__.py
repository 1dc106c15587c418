"""The MLflow model registry as a model source: aliases resolved once, versions pinned."""
