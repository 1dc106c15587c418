"""The S3 backend of `ObjectStore`: boto3 against AWS, MinIO or a local moto server.

What it adds to plain boto3, and why:
- retries in botocore's `standard` mode with `total_max_attempts` from params, and TLS enforced
  when `s3.require_tls` is set (the client is built in `s3_client`);
- the optional server-side-encryption header on every write, multipart or not;
- multipart upload above a threshold through s3transfer, which aborts the upload if a part fails
  (a killed process leaves an orphan for `cleanup_incomplete` to abort later);
- `put_bytes(..., if_absent=True)` as `PutObject` with `If-None-Match: *`: the one atomic
  create-if-absent that the publish protocol commits with;
- every error that survives the retries as one `StorageError` that names the operation, the
  object, the S3 error code and what to check, and never a credential (`s3_errors`). The
  credentials in use are also redacted from every boto3/botocore/s3transfer/urllib3 log record
  (`redact`), because botocore logs request headers (access key id, session token) at DEBUG.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.manager import TransferConfig, TransferManager

from pipelines.config import Settings
from pipelines.errors import ConfigError, StorageError
from pipelines.storage.base import ObjectStore
from pipelines.storage.s3_client import bucket_and_prefix, s3_client
from pipelines.storage.s3_errors import (
    CONFLICT,
    NOT_FOUND,
    Missing,
    error_code,
    http_status,
    s3_error,
)

log = logging.getLogger(__name__)

MiB = 1024 * 1024


class S3Store(ObjectStore):
    """`s3://bucket/prefix` as an `ObjectStore`; keys are relative to the prefix.

    Build it with `from_config`; the constructor takes a ready client so tests and callers with
    their own session can inject one.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        sse: str | None = None,
        sse_kms_key_id: str | None = None,
        multipart_threshold: int = 64 * MiB,
        max_attempts: int = 5,
        endpoint: str | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.endpoint = endpoint or "AWS S3"
        self.max_attempts = max_attempts
        self._sse: dict[str, str] = {}
        if sse:
            self._sse["ServerSideEncryption"] = sse
        if sse_kms_key_id:
            self._sse["SSEKMSKeyId"] = sse_kms_key_id
        # Parts are at least 5 MiB (the S3 minimum); s3transfer grows them past 10,000 parts.
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=max(multipart_threshold, 5 * MiB),
            max_request_concurrency=4,
        )

    @classmethod
    def from_config(cls, cfg: Settings, credentials: Mapping[str, str] | None = None) -> S3Store:
        """Build the store `cfg.output.uri` names, with the client settings in `cfg.s3`.

        `credentials` (keys `aws_access_key_id`, `aws_secret_access_key`, optional
        `aws_session_token`) override boto3's default chain (environment, profile, instance role);
        the Airflow DAG passes them from an Airflow connection.
        """
        bucket, prefix = bucket_and_prefix(cfg.output.uri)
        if cfg.output.sse_kms_key_id and cfg.output.sse != "aws:kms":
            raise ConfigError(
                "output.sse_kms_key_id is set but output.sse is not 'aws:kms'",
                fix="set output.sse: aws:kms, or remove output.sse_kms_key_id",
            )
        client = s3_client(cfg, credentials)
        return cls(
            client,
            bucket,
            prefix,
            sse=cfg.output.sse,
            sse_kms_key_id=cfg.output.sse_kms_key_id,
            multipart_threshold=cfg.s3.multipart_threshold_mb * MiB,
            max_attempts=cfg.s3.max_attempts,
            endpoint=cfg.s3.endpoint_url,
        )

    # -- ObjectStore ---------------------------------------------------------------------------

    def put_file(self, local: Path, key: str) -> None:
        """Upload `local`; multipart above the threshold, SSE on every write."""
        full = self._full(key)
        size = local.stat().st_size
        with (
            self._errors("PutObject/MultipartUpload", key),
            TransferManager(self.client, self._transfer) as manager,
        ):
            manager.upload(str(local), self.bucket, full, extra_args=dict(self._sse)).result()
        log.debug("uploaded %s (%d bytes) to %s", local.name, size, self.url(key))

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        """Write `data`; with `if_absent`, a `PutObject(IfNoneMatch="*")` that returns False on 412.

        A 412 can also mean our own earlier attempt landed and only its response was lost; the
        caller tells the two apart by reading the object back (the publish protocol does).
        """
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._full(key), "Body": data}
        args.update(self._sse)
        if not if_absent:
            with self._errors("PutObject", key):
                self.client.put_object(**args)
            return True
        args["IfNoneMatch"] = "*"
        for attempt in range(1, self.max_attempts + 1):
            try:
                self.client.put_object(**args)
                return True
            except ClientError as exc:
                code, status = error_code(exc), http_status(exc)
                if code == "PreconditionFailed" or status == 412:
                    return False
                if (code in CONFLICT or status == 409) and attempt < self.max_attempts:
                    time.sleep(conflict_backoff(attempt))
                    continue
                if code in CONFLICT or status == 409:
                    break
                self._raise("PutObject", key, exc)
            except BotoCoreError as exc:
                self._raise("PutObject", key, exc)
        # A conflict on every attempt: another writer was racing us. It won only if it landed.
        if self.modified_at(key) is not None:
            return False
        raise StorageError(
            f"S3 PutObject (if absent) on {self.url(key)} kept failing with 409 "
            f"ConditionalRequestConflict after {self.max_attempts} attempts, and no object exists",
            where=self.endpoint,
            fix="another writer is racing this key; retry the task",
        )

    def get_bytes(self, key: str) -> bytes | None:
        """The whole object in memory: meant for manifests and markers, not for data files."""
        try:
            with self._errors("GetObject", key, missing_ok=True):
                body = self.client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"]
                try:
                    return body.read()
                finally:
                    body.close()
        except Missing:
            return None

    def list_keys(self, prefix: str) -> list[str]:
        """Keys under `prefix` as a folder (like `LocalStore`): `a/b` lists `a/b` and `a/b/...`."""
        keys: list[str] = []
        with self._errors("ListObjectsV2", prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._full(prefix) if prefix else self._base()
            )
            for page in pages:
                keys.extend(self._rel(obj["Key"]) for obj in page.get("Contents", []))
        return sorted(k for k in keys if _under(k, prefix))

    def delete(self, keys: Iterable[str]) -> None:
        batch = [{"Key": self._full(k)} for k in keys]
        for start in range(0, len(batch), 1000):  # DeleteObjects takes at most 1000 keys
            chunk = batch[start : start + 1000]
            with self._errors("DeleteObjects", self._rel(chunk[0]["Key"])):
                resp = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True}
                )
            errors = [e for e in resp.get("Errors", []) if e.get("Code") not in NOT_FOUND]
            if errors:
                first = errors[0]
                raise StorageError(
                    f"S3 DeleteObjects could not delete {len(errors)} key(s), e.g. "
                    f"{self.url(self._rel(first.get('Key', '')))}: {first.get('Code')} "
                    f"{first.get('Message', '')}".rstrip(),
                    where=self.endpoint,
                    fix="check that the credentials may s3:DeleteObject under this prefix",
                )

    def modified_at(self, key: str) -> float | None:
        try:
            with self._errors("HeadObject", key, missing_ok=True):
                head = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except Missing:
            return None
        return float(head["LastModified"].timestamp())

    def cleanup_incomplete(self, prefix: str, older_than_s: float) -> int:
        """Abort multipart uploads under `prefix` started more than `older_than_s` seconds ago.

        Orphans are invisible to readers but are billed; they come from killed writers. Keep the
        bound well above the longest upload, so live uploads of a running attempt survive.
        """
        cutoff, aborted = time.time() - older_than_s, 0
        with self._errors("ListMultipartUploads", prefix):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self._full(prefix) if prefix else self._base()
            )
            uploads = [u for page in pages for u in page.get("Uploads", [])]
        for upload in uploads:
            key = self._rel(upload["Key"])
            if not _under(key, prefix) or upload["Initiated"].timestamp() >= cutoff:
                continue
            try:
                with self._errors("AbortMultipartUpload", key, missing_ok=True):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
            except Missing:  # completed or aborted by someone else meanwhile
                continue
            aborted += 1
            log.info("aborted orphaned multipart upload of %s", self.url(key))
        return aborted

    # -- helpers -------------------------------------------------------------------------------

    def _base(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def _full(self, key: str) -> str:
        key = key.strip("/")
        if any(part in {"", ".", ".."} for part in key.split("/")):
            raise StorageError(f"invalid object key {key!r}", where=self.uri)
        return self._base() + key

    def _rel(self, full: str) -> str:
        return full.removeprefix(self._base())

    @contextmanager
    def _errors(self, operation: str, key: str, *, missing_ok: bool = False) -> Iterator[None]:
        """Turn what botocore raises after its retries into one actionable `StorageError`."""
        try:
            yield
        except ClientError as exc:
            if missing_ok and (
                error_code(exc) in NOT_FOUND | {"NoSuchUpload"} or http_status(exc) == 404
            ):
                raise Missing from None
            self._raise(operation, key, exc)
        except BotoCoreError as exc:
            self._raise(operation, key, exc)

    def _raise(self, operation: str, key: str, exc: Exception) -> NoReturn:
        target = self.url(key) if key else self.uri
        raise s3_error(
            operation,
            target,
            exc,
            bucket=self.bucket,
            max_attempts=self.max_attempts,
            endpoint=self.endpoint,
        ) from exc


def _under(key: str, prefix: str) -> bool:
    prefix = prefix.strip("/")
    return not prefix or key == prefix or key.startswith(prefix + "/")


def conflict_backoff(attempt: int) -> float:
    """Full-jitter exponential backoff for 409 ConditionalRequestConflict, capped at 2 s."""
    return random.uniform(0, min(2.0, 0.1 * 2**attempt))
