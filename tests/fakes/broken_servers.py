"""Loopback servers that fail the way a real MinIO or Kubernetes API can.

- `closed_port()`: a port nothing listens on (connect is refused at once);
- `StallingServer`: accepts TCP connections and never answers a byte;
- `StatusServer`: answers every HTTP request with one status code (403 for
  a MinIO that rejects the keys, 500 for a broken one), S3-style XML body;
  `head_status=404` makes it a MinIO without the bucket that refuses to create it.
"""

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from fakes.network_guard import SHUTDOWN_POLL, free_port


def closed_port() -> int:
    return free_port()


class StallingServer:
    """Completes the TCP handshake (the kernel does that from the backlog) and then says nothing."""

    def __init__(self):
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._held = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self._held.append(conn)  # keep it open, never read or write

    @property
    def connections(self) -> int:
        """Connections accepted so far (each held open, unanswered)."""
        return len(self._held)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in self._held:
            conn.close()
        self._sock.close()


class StatusServer:
    def __init__(self, status: int, code: str, head_status: Optional[int] = None):
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, with_body: bool, answer: int = status):
                server.requests.append((self.command, self.path))
                body = f'<?xml version="1.0"?><Error><Code>{code}</Code><Message>{code}</Message></Error>'.encode()
                self.send_response(answer)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body) if with_body else 0))
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_HEAD(self):
                self._answer(with_body=False, answer=head_status or status)

            def do_GET(self):
                self._answer(with_body=True)

            def do_PUT(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer(with_body=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(SHUTDOWN_POLL,), daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
