"""MLflow's /health as the charm's settled update-status asks it, on loopback.

`status` is what GET /health answers (200 while MLflow serves); `down()`
stops listening altogether, as a crash-looping or deleted pod does.
"""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List

from fakes.network_guard import SHUTDOWN_POLL

# The in-cluster name the charm builds: tests resolve it to loopback.
MLFLOW_HOST = "mlflow-server.kubeflow.svc.cluster.local"


class HealthServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.status = 200
        self.requests: List[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                body = b"OK" if server.status == 200 else b"unhealthy"
                self.send_response(server.status if self.path == "/health" else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(SHUTDOWN_POLL,), daemon=True)

    def __enter__(self) -> "HealthServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
