#!/bin/sh
# Create the buckets batchscore writes to, once MinIO is healthy. Idempotent: safe on every `up`.
# Runs in the minio/mc image; credentials and bucket names come from the environment.
set -eu

: "${MINIO_ENDPOINT:=http://minio:9000}"
: "${MINIO_BUCKETS:=batchscore}"

# The MinIO health check can pass a moment before the S3 API accepts credentials: retry briefly.
i=0
until mc alias set local "$MINIO_ENDPOINT" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null; do
  i=$((i + 1))
  if [ "$i" -ge 30 ]; then
    echo "minio-init: cannot reach $MINIO_ENDPOINT after 30 tries" >&2
    exit 1
  fi
  sleep 1
done

for bucket in $MINIO_BUCKETS; do
  mc mb --ignore-existing "local/$bucket"
done
echo "minio-init: buckets ready: $MINIO_BUCKETS"
