"""What an S3 failure means: one `StorageError` naming the operation, the object, the S3 code
and what to check, retryable unless retrying cannot help (credentials, bucket, SSE parameters).

Only called for what survives botocore's own retries. The message goes through `redact` because
an error may quote a request, and a request may carry a credential.
"""

from __future__ import annotations

from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

from pipelines.errors import StorageError
from pipelines.storage.redact import redact

AUTH_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidToken",
    "SignatureDoesNotMatch",
    "TokenRefreshRequired",
}
NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
CONFLICT = {"ConditionalRequestConflict"}  # 409: a concurrent conditional write; retry


class Missing(Exception):
    """The object (or upload) does not exist: the store turns it into None / skips it."""


def error_code(exc: ClientError) -> str:
    """The S3 error code of a ClientError ("Unknown" if the response has none)."""
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def http_status(exc: ClientError) -> int:
    """The HTTP status of a ClientError (0 if the response has none)."""
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def s3_error(
    operation: str, target: str, exc: Exception, *, bucket: str, max_attempts: int, endpoint: str
) -> StorageError:
    """The `StorageError` for `exc` raised by `operation` on `target` (an s3:// URL)."""
    retryable = True
    if isinstance(exc, ClientError):
        code, status = error_code(exc), http_status(exc)
        meta = exc.response.get("ResponseMetadata", {})
        attempts = int(meta.get("RetryAttempts", 0)) + 1
        message = exc.response.get("Error", {}).get("Message", "")
        what = (
            f"S3 {operation} on {target} failed: {code} (HTTP {status}) after "
            f"{attempts} attempt(s): {message}"
        )
        if code in AUTH_CODES or status in {401, 403}:
            retryable = False
            fix = (
                "check the S3 credentials (AWS_* environment variables or the Airflow "
                f"connection) and that they may access bucket {bucket!r}"
            )
        elif code == "NoSuchBucket":
            retryable = False
            fix = f"create bucket {bucket!r} or correct output.uri"
        elif code.startswith("KMS") or code in {"InvalidArgument", "InvalidRequest"}:
            retryable = False
            fix = "check output.sse / output.sse_kms_key_id and the request parameters"
        else:
            fix = (
                "transient errors were already retried (s3.max_attempts); check "
                "s3.endpoint_url, the network and the service status, then retry"
            )
    elif isinstance(exc, NoCredentialsError | PartialCredentialsError):
        retryable = False
        what = f"S3 {operation} on {target} failed: no usable credentials ({exc})"
        fix = (
            "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or configure "
            "the Airflow connection"
        )
    else:
        what = (
            f"S3 {operation} on {target} failed after up to {max_attempts} "
            f"attempt(s): {type(exc).__name__}: {exc}"
        )
        fix = (
            "check s3.endpoint_url, that the endpoint is up and reachable, and "
            "s3.connect_timeout/read_timeout"
        )
    err = StorageError(redact(what), where=endpoint, fix=fix)
    err.retryable = retryable
    return err
