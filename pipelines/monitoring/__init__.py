"""Drift monitoring: a baseline kept with the model, mergeable shard state, calibrated alarms."""
