"""The boto3 client behind `S3Store`: from params, with TLS enforced and credentials redacted.

Retries are botocore's `standard` mode with `total_max_attempts` from params (the default
`legacy` mode retries fewer errors, and its `max_attempts` does not count the first call).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config

from pipelines.config import Settings
from pipelines.errors import ConfigError
from pipelines.storage.redact import redact_in_logs

_CREDENTIAL_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")


def s3_client(cfg: Settings, credentials: Mapping[str, str] | None = None) -> Any:
    """A boto3 S3 client with the settings in `cfg.s3`, every credential it uses redacted.

    `credentials` override boto3's default chain; the ones the chain resolves are registered for
    redaction too, once the client exists.
    """
    creds = _checked_credentials(credentials)
    redact_in_logs(*creds.values())
    session = boto3.session.Session(
        **{k: v for k, v in creds.items() if v}, region_name=cfg.s3.region
    )
    client = session.client("s3", endpoint_url=cfg.s3.endpoint_url, config=_client_config(cfg))
    _require_tls(cfg, client)
    resolved = session.get_credentials()
    if resolved is not None:
        frozen = resolved.get_frozen_credentials()
        redact_in_logs(frozen.access_key, frozen.secret_key, frozen.token)
    return client


def bucket_and_prefix(uri: str) -> tuple[str, str]:
    """The bucket and key prefix of `s3://bucket/prefix`; a URI that names no bucket fails."""
    if not uri.startswith("s3://"):
        raise ConfigError(f"output.uri {uri!r} is not an s3:// URI", fix="use s3://bucket/prefix")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ConfigError(f"output.uri {uri!r} names no bucket", fix="use s3://bucket/prefix")
    return bucket, prefix


def _checked_credentials(credentials: Mapping[str, str] | None) -> dict[str, str]:
    creds = dict(credentials or {})
    unknown = sorted(set(creds) - set(_CREDENTIAL_KEYS))
    if unknown:  # names only: the values may be secrets
        raise ConfigError(
            f"unknown S3 credential field(s): {', '.join(unknown)}",
            fix=f"pass only {', '.join(_CREDENTIAL_KEYS)}",
        )
    return creds


def _client_config(cfg: Settings) -> Config:
    return Config(
        region_name=cfg.s3.region,
        retries={"mode": "standard", "total_max_attempts": cfg.s3.max_attempts},
        connect_timeout=cfg.s3.connect_timeout,
        read_timeout=cfg.s3.read_timeout,
        # MinIO/moto endpoints are not wildcard DNS: address buckets in the path.
        s3={"addressing_style": "path"} if cfg.s3.endpoint_url else None,
    )


def _require_tls(cfg: Settings, client: Any) -> None:
    """With `s3.require_tls`, refuse a plain-http endpoint.

    The endpoint in use, not only the configured one: AWS_ENDPOINT_URL(_S3) and the AWS config
    file can point boto3 elsewhere when s3.endpoint_url is null.
    """
    in_use = str(client.meta.endpoint_url)
    if cfg.s3.require_tls and not in_use.lower().startswith("https://"):
        raise ConfigError(
            f"S3 endpoint {in_use} is not https:// but s3.require_tls is true",
            fix="use an https:// endpoint (s3.endpoint_url, or AWS_ENDPOINT_URL/"
            "AWS_ENDPOINT_URL_S3 in the environment), or set s3.require_tls: false only "
            "for a loopback test endpoint",
        )
