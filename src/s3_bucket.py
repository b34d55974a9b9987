"""The artifact bucket in MinIO: check it exists, create it when allowed.

The only S3 I/O of the charm. Every call is bounded (short connect and read
timeouts, no retries), so an unreachable or stalled MinIO costs a hook a few
seconds and a Waiting status, never a hung hook.
"""

import logging
from typing import Any

from problems import Blocked, Waiting

# At DEBUG (ops' default for the root logger) botocore logs signed request
# headers, which name the access key; keep the client libraries quiet.
for _name in ("boto3", "botocore", "s3transfer", "urllib3"):
    logging.getLogger(_name).setLevel(logging.WARNING)

CONNECT_TIMEOUT = 3
READ_TIMEOUT = 3


def _client(endpoint_url: str, access_key: str, secret_key: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            retries={"total_max_attempts": 1},
        ),
    )


def ensure_bucket(endpoint_url: str, access_key: str, secret_key: str, bucket: str, create: bool) -> bool:
    """True when the bucket was created now, False when it already existed.

    Raises Waiting when MinIO cannot be reached, Blocked when it answers
    with something a human must fix. Messages carry no exception text: a
    library's message could quote a request.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    unreachable = Waiting(f"cannot reach MinIO at {endpoint_url} to check bucket {bucket!r}; retrying on update-status")
    try:
        client = _client(endpoint_url, access_key, secret_key)
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 403 or code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise Blocked(
                f"MinIO denied access to bucket {bucket!r} (HTTP 403): check minio's access-key and secret-key"
            )
        if not (status == 404 or code in ("404", "NoSuchBucket", "NotFound")):
            raise Waiting(f"MinIO answered HTTP {status} checking bucket {bucket!r}; retrying on update-status")
    except (BotoCoreError, OSError):
        raise unreachable
    if not create:
        raise Blocked(
            f"bucket {bucket!r} does not exist in MinIO: create it, or run "
            "`juju config <app> create_default_artifact_root_if_missing=true`"
        )
    try:
        client.create_bucket(Bucket=bucket)
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        if code != "BucketAlreadyOwnedByYou":
            raise Blocked(f"MinIO refused to create bucket {bucket!r} ({code[:40] or 'error'}): create it by hand")
    except (BotoCoreError, OSError):
        raise unreachable
    return True
