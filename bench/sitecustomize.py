"""Bench only: loaded by every Python process the hook benchmark starts.

bench/hooks.py runs the charm on a Python of its own: a bare virtual
environment of the charm's interpreter (no packages; the charm's come from
venv/ through PYTHONPATH, as in the operator pod) whose site-packages holds
this file and nothing else. The `import ops` floor runs on it too, so both
pay the same. It never ships with the charm.

- BENCH_LOOPBACK_NAMES="minio.kubeflow=127.x.y.z": the charm builds its S3
  endpoint from minio's relation data (http://minio.kubeflow:9000, byte for
  byte from CONTRACTS.md); this makes that name resolve to the bench's S3
  server on loopback, in this process only.
- BENCH_IMPORTS_OUT=<file>: at exit, write the top-level names of every
  module the process imported, one per line, so the bench can tell which
  hooks loaded boto3, lightkube or jinja2.
"""

import os
import sys

_aliases = os.environ.get("BENCH_LOOPBACK_NAMES")
if _aliases:
    import socket

    _names = dict(item.split("=", 1) for item in _aliases.split(","))
    _real_getaddrinfo = socket.getaddrinfo

    def _getaddrinfo(host, *args, **kwargs):
        return _real_getaddrinfo(_names.get(host, host), *args, **kwargs)

    socket.getaddrinfo = _getaddrinfo

_imports_out = os.environ.get("BENCH_IMPORTS_OUT")
if _imports_out:
    import atexit

    def _write_imports():
        names = sorted({name.split(".", 1)[0] for name in list(sys.modules)})
        with open(_imports_out, "w") as f:
            f.write("\n".join(names) + "\n")

    atexit.register(_write_imports)
