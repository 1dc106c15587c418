"""Object storage: the interface, the local folder and S3 stores, secrets kept out of logs."""
