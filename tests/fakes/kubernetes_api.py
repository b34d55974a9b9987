"""A Kubernetes API server on loopback that answers the one question the charm asks.

`GET /api/v1/namespaces/<ns>/pods?labelSelector=...` returns a PodList whose
pods are as ready as the test says. The charm's lightkube client talks to it
over real HTTP through a kubeconfig file, as it would to a cluster.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse


class FakeKubernetesApi:
    def __init__(self):
        self.pod_ready = True
        self.pod_count = 1
        self.ready_pods = None  # how many of the pods are Ready; None: all or none, as pod_ready says
        self.pod_annotations = {}
        self.status_code = 200
        self.requests = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                url = urlparse(self.path)
                api.requests.append((url.path, parse_qs(url.query)))
                if api.status_code != 200:
                    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": api.status_code}
                    return self._reply(api.status_code, body)
                parts = url.path.strip("/").split("/")
                if parts[:3] != ["api", "v1", "namespaces"] or parts[4:] != ["pods"]:
                    return self._reply(404, {"kind": "Status", "apiVersion": "v1", "code": 404})
                self._reply(200, api.pod_list(parts[3], parse_qs(url.query).get("labelSelector", [""])[0]))

            def _reply(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def pod_list(self, namespace, selector):
        app = selector.split("=", 1)[-1]
        pods = [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{app}-{i}",
                    "namespace": namespace,
                    "labels": {"app.kubernetes.io/name": app},
                    "annotations": dict(self.pod_annotations),
                },
                "status": {"conditions": [{"type": "Ready", "status": "True" if self._ready(i) else "False"}]},
            }
            for i in range(self.pod_count)
        ]
        return {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods}

    def _ready(self, index: int) -> bool:
        return self.pod_ready if self.ready_pods is None else index < self.ready_pods

    def apply_spec(self, spec: dict) -> None:
        """What Juju and Kubernetes do after pod-spec-set: the pods carry the new template."""
        self.pod_annotations = dict(((spec.get("kubernetesResources") or {}).get("pod") or {}).get("annotations") or {})

    def write_kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                    "current-context": "fake",
                }
            )
        )
        return path

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
