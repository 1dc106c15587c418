"""Quality reports a person reads: one JSON document rendered as a self-contained HTML page."""
