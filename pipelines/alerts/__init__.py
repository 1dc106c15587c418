"""Alerts: one message per run that needs a person, sent through Airflow's notifiers."""
