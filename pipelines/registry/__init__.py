"""The MLflow model registry as batchscore's model source: aliases resolved once, versions pinned."""
