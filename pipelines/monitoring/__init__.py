"""Drift monitoring: a baseline stored with the model, mergeable per-shard state, calibrated alarms."""
