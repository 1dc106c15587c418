"""A scoring run: plan, score each shard, finalize and publish, and the local process pool."""
