"""A real S3 server (moto) on loopback, reachable under MinIO's in-cluster name.

The charm builds its endpoint from minio's relation data,
http://minio.kubeflow:9000. Tests keep that data byte for byte, so the S3
server listens on 127.0.0.1:9000 and `minio.kubeflow` resolves to loopback
inside the test process (and nowhere else).
"""

import contextlib
import logging
import os
import socket

HOST_ALIASES = ("minio.kubeflow", "minio")
# moto takes the first label of an unknown host name for a bucket
# (virtual-host style); MinIO's in-cluster name is an endpoint, not a bucket.
os.environ.setdefault("MOTO_S3_CUSTOM_ENDPOINTS", "http://minio.kubeflow:9000,http://minio:9000")


@contextlib.contextmanager
def loopback_names(names=HOST_ALIASES):
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return real("127.0.0.1" if host in names else host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = real


@contextlib.contextmanager
def s3_server(port: int = 9000):
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
