"""Publishing: every object key, the all-or-nothing commit, the manifest, the part writer."""
