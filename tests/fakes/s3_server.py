"""The one S3 fake of every test layer: moto's S3 app in a thread on loopback.

moto speaks signature v4 and path-style addressing as MinIO does (MinIO has
no package in any registry here). The server lists the requests it answers
("METHOD /path?query"), so the bench can show that a settled hook sends none
and the e2e tests can tell a presigned part upload (signed in its query) from
the server's own calls (signed in headers). The charm builds its
endpoint from minio's relation data (http://minio.kubeflow:9000); each layer
makes that name reach this server its own way (tests/fakes/network_guard.py
in Scenario, bench/sitecustomize.py in the bench, `localhost` in e2e).
"""

import logging
import os
import re
import threading
import urllib.parse
import urllib.request
from typing import Any, Callable, Iterable, List, Optional, Sequence

from fakes.network_guard import free_port

# moto takes the first label of an unknown host name for a bucket
# (virtual-host style); MinIO's in-cluster name is an endpoint, not a bucket.
MINIO_ENDPOINTS = ("http://minio.kubeflow:9000", "http://minio:9000")
HOST_ALIASES = ("minio.kubeflow", "minio")


_RANGE = re.compile(r"bytes=([0-9]+)-([0-9]*)")
_SIGV2_QUERY = ("AWSAccessKeyId", "Signature", "Expires")


def _ranged_get(environ: dict, start_response: Callable) -> Optional[Iterable[bytes]]:
    """Answer `GET /bucket/key` with `Range: bytes=a-b` from the object's buffer.

    moto 5.2 answers a ranged GET by reading the whole object and slicing it,
    so the 8 MiB ranges boto3 and MLflow fetch a big object in cost a full
    read each (a 1 GiB download: 128 reads of 1 GiB), and a throughput bench
    would measure moto. This reads only the range, with the headers S3 sends
    with a 206 (Content-Range, ETag, Last-Modified). Anything else (versions,
    parts, suffix ranges, a range past the end) is moto's to answer.
    """
    match = _RANGE.fullmatch(environ.get("HTTP_RANGE", ""))
    if environ["REQUEST_METHOD"] != "GET" or not match:
        return None
    # A presigned URL carries its signature in parameters (X-Amz-* for
    # SigV4); any other parameter (versionId, partNumber, response-*) selects
    # something else.
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    if any(not (name.startswith("X-Amz-") or name in _SIGV2_QUERY) for name in query):
        return None
    bucket, _, name = environ.get("PATH_INFO", "").lstrip("/").partition("/")
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    key: Any = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_object(bucket, name) if name else None
    if key is None:
        return None
    first, last = int(match[1]), min(int(match[2] or key.size - 1), key.size - 1)
    if first > last:
        return None
    with key.lock:
        etag = key.etag  # reads the whole object once, then kept
        key._value_buffer.seek(first)
        body = key._value_buffer.read(last - first + 1)
    start_response(
        "206 Partial Content",
        [
            ("Content-Type", key.metadata.get("Content-Type", "binary/octet-stream")),
            ("Content-Length", str(len(body))),
            ("Content-Range", f"bytes {first}-{last}/{key.size}"),
            ("ETag", etag),
            ("Last-Modified", key.last_modified_RFC1123),
            ("Accept-Ranges", "bytes"),
        ],
    )
    return [body]


class S3Server:
    """Serves S3 on host:port (a free loopback port by default) until `stop()`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, endpoints: Sequence[str] = MINIO_ENDPOINTS):
        self.host, self.port = host, port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        # Set before moto is imported: it may read the variable once.
        os.environ["MOTO_S3_CUSTOM_ENDPOINTS"] = ",".join([*endpoints, self.url, f"http://localhost:{self.port}"])
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.requests: List[str] = []
        moto_app = DomainDispatcherApplication(create_backend_app)

        def app(environ, start_response):
            query = environ.get("QUERY_STRING", "")
            self.requests.append(
                f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}{'?' if query else ''}{query}"
            )
            ranged = _ranged_get(environ, start_response)
            return moto_app(environ, start_response) if ranged is None else ranged

        self._server = make_server(host, self.port, app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def delete_bucket(self, bucket: str) -> None:
        request = urllib.request.Request(f"{self.url}/{bucket}", method="DELETE")
        try:
            urllib.request.urlopen(request, timeout=5).read()  # noqa: S310 - our own loopback server
        except OSError:
            pass  # 404: no such bucket

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "S3Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
