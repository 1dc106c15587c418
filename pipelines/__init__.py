"""batchscore: batch scoring for scikit-learn models, one library for CLI, DVC, Airflow."""

__version__ = "0.1.0"
