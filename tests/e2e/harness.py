"""What the e2e tests and `make demo` share: the notebook run, HTTP checks, metrics."""

import http.client
import json
import subprocess
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

from pod_runner import NODE_ENV, merge_pod_default_env

HERE = Path(__file__).resolve().parent
BUCKET = "mlflow"  # the charm's default_artifact_root, and the tutorial's bucket
INGRESS_HOST = "10.64.140.43.nip.io"  # the tutorial's gateway host
FOREIGN_HOST = "attacker.example.com"


def loopback_tracking_uri(tracking_uri: str) -> str:
    """The PodDefault's in-cluster tracking URI with its host swapped for loopback."""
    parts = urlsplit(tracking_uri)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{parts.port}"))


def notebook_env(pod_default_env: Mapping[str, str], workdir: Path, image_bin: Path) -> Dict[str, str]:
    """Only the PodDefault's env (as Kubernetes delivers it), plus what any process needs, plus the loopback rewrite."""
    home = workdir / "notebook-home"
    home.mkdir(parents=True, exist_ok=True)
    env = merge_pod_default_env({}, pod_default_env)
    env["MLFLOW_TRACKING_URI"] = loopback_tracking_uri(env["MLFLOW_TRACKING_URI"])
    env.update({"PATH": f"{image_bin}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"})
    env.update(NODE_ENV)  # no usage reports leave this machine
    return env


def _run_reporting(
    script: str, args: List[str], env: Mapping[str, str], cwd: Path, image_bin: Path, timeout: float
) -> dict:
    """Run one of this folder's client scripts with the image's Python; return its last REPORT line's JSON."""
    result = subprocess.run(
        [str(image_bin / "python"), str(HERE / script), *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    reports = [line for line in result.stdout.splitlines() if line.split(" ", 1)[0].endswith("-REPORT")]
    if result.returncode != 0 or not reports:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise AssertionError(f"{script} failed (exit {result.returncode}):\n{tail}")
    return json.loads(reports[-1].split(" ", 1)[1])


def run_notebook(pod_default_env: Mapping[str, str], workdir: Path, image_bin: Path, timeout: float = 600) -> dict:
    """Run notebook.py in its own process with the notebook's env; return its report."""
    env = notebook_env(pod_default_env, workdir, image_bin)
    downloads = workdir / "notebook-downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    return _run_reporting("notebook.py", [BUCKET, str(downloads)], env, downloads, image_bin, timeout)


def run_artifact_client(
    env: Mapping[str, str], path: Path, experiment: str, location: str, workdir: Path, image_bin: Path
) -> dict:
    """One artifact up and back through MLflow's client (artifact_client.py); its report, timings included."""
    downloads = workdir / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    args = [str(path), experiment, location, str(downloads)]
    return _run_reporting("artifact_client.py", args, env, workdir, image_bin, timeout=1800)


def http_get(port: int, path: str, host: Optional[str] = None, timeout: float = 30) -> Tuple[int, bytes]:
    """GET from the server on loopback, optionally with another Host header."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Host": host} if host else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


API_PROBE = "/api/2.0/mlflow/experiments/search?max_results=1"


def request_counts(metrics_text: str) -> Dict[str, float]:
    """Prometheus request counters by sample line, e.g. flask_http_request_total{...}."""
    counts = {}
    for line in metrics_text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name_labels, _, value = line.rpartition(" ")
        if "_request" in name_labels and ("_total" in name_labels or "_count" in name_labels):
            counts[name_labels] = float(value)
    return counts


def scrape(port: int) -> Dict[str, float]:
    status, body = http_get(port, "/metrics")
    if status != 200:
        raise AssertionError(f"/metrics answered HTTP {status}")
    return request_counts(body.decode())


def secret_values(spec: Mapping) -> Dict[str, str]:
    from pod_runner import secrets

    return {f"{name}/{key}": value for name, data in secrets(spec).items() for key, value in data.items()}
