"""A `moto_server` that checks credentials, for the "wrong S3 credentials" rows.

The session's moto server (tests/s3_fixtures.py) accepts any key, so a wrong secret cannot fail
there. This one is its own process: an IAM user with an allow-all policy and one access key are
made first, then `POST /moto-api/reset-auth 0` turns authentication on, after which every request
must be signed with that key (a wrong secret gets 403 SignatureDoesNotMatch, an unknown key 403
InvalidAccessKeyId), exactly like S3 or MinIO would answer.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3

from tests.s3_fixtures import REGION, free_port, moto_server_bin, stop_process

ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


@dataclass(frozen=True)
class AuthMoto:
    endpoint: str
    access_key: str  # the one key moto accepts
    secret_key: str

    def client(self, secret: str | None = None, service: str = "s3"):  # noqa: ANN201
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret or self.secret_key,
        )


def _post(endpoint: str, path: str, body: bytes) -> None:
    req = urllib.request.Request(
        endpoint + path, data=body, method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


@contextlib.contextmanager
def auth_moto(log_dir: Path) -> Iterator[AuthMoto]:
    """Start an authenticating moto server; yield its endpoint and its one valid key."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with open(log_dir / "auth-moto.log", "ab") as log:
        proc = subprocess.Popen(
            [moto_server_bin(), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _post(endpoint, "/moto-api/reset", b"")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"auth moto did not start: {log_dir}/auth-moto.log"
                    ) from None
                time.sleep(0.1)
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="AKIASETUP",
            aws_secret_access_key="setup",
        )
        iam.create_user(UserName="batchscore")
        iam.put_user_policy(
            UserName="batchscore", PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL)
        )
        key = iam.create_access_key(UserName="batchscore")["AccessKey"]
        _post(endpoint, "/moto-api/reset-auth", b"0")  # from now on every request is checked
        yield AuthMoto(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        stop_process(proc)
