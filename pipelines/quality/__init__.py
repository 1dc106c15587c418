"""Data quality: GX suites, the streaming gate over shards, the merged verdict, ID uniqueness."""
