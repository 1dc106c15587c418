"""Credentials kept out of logs and error messages: every secret in use is masked as `***`.

botocore logs request headers (access key id, session token) at DEBUG, and an error message may
quote a request. So the S3 store registers every credential it uses here, and a filter on each
boto3/botocore/s3transfer/urllib3/pipelines logger rewrites records that contain one.
"""

from __future__ import annotations

import logging

_SECRETS: set[str] = set()
_LOGGER_ROOTS = ("boto3", "botocore", "s3transfer", "urllib3", "pipelines")


def redact(text: str) -> str:
    """`text` with every registered secret replaced by `***`."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RedactSecrets(logging.Filter):
    """Freezes each record's message with known credentials masked; never drops a record.

    Freezing (message formatted now, args dropped) matters: a handler formatting later would
    render mutable args (request objects) as they are then, not as they were checked.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            try:
                message = record.getMessage()
            except Exception:  # a malformed record: leave it to logging's own error path
                return True
            record.msg, record.args = redact(message), None
        return True


_FILTER = RedactSecrets()


def redact_in_logs(*secrets: str | None) -> None:
    """Remember `secrets` and filter them out of the AWS-stack loggers that exist now.

    Logger filters apply only to records created on that very logger, so the filter goes on each
    module logger under the roots (they exist once boto3 has built a client).
    """
    _SECRETS.update(s for s in secrets if s and len(s) >= 4)
    names = [n for n in list(logging.Logger.manager.loggerDict) if n.split(".")[0] in _LOGGER_ROOTS]
    for name in {*names, *_LOGGER_ROOTS}:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
