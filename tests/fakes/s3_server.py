"""moto's S3 app in a thread on loopback: the S3 of the Scenario layer and the hook bench.

In-process and quick to start, it serves the charm's bucket check, which
sends a few small requests, and faults a real server cannot be asked for
(plain HTTP where the charm expects TLS). The e2e suite, the demo and the
artifact bench use a real S3 server instead (tests/fakes/seaweedfs.py).
moto speaks signature v4 and path-style addressing as MinIO does. The
server lists the requests it answers ("METHOD /path?query"), so the bench
can show that a settled hook sends none. The charm builds its endpoint from
minio's relation data (http://minio.kubeflow:9000); each layer makes that
name reach this server its own way (tests/fakes/network_guard.py in
Scenario, bench/sitecustomize.py in the bench).
"""

import logging
import os
import threading
import urllib.request
from typing import List, Sequence

from fakes.network_guard import SHUTDOWN_POLL, free_port

# moto takes the first label of an unknown host name for a bucket
# (virtual-host style); MinIO's in-cluster name is an endpoint, not a bucket.
MINIO_ENDPOINTS = ("http://minio.kubeflow:9000", "http://minio:9000")
HOST_ALIASES = ("minio.kubeflow", "minio")


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
            return moto_app(environ, start_response)

        self._server = make_server(host, self.port, app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(SHUTDOWN_POLL,), daemon=True)
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
