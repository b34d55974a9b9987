"""What the MLflow pod holds in memory, with enable_workspaces and without.

Runs the containers of the rendered pod spec (the charm's own render, as
tests/unit/helpers.py builds its inputs) as local processes: each server's
command and plain env as the spec gives them, against a sqlite database and
the loopback Kubernetes API of tests/fakes (one profile namespace). Waits
until each answers /health, lets its workers settle, and sums the resident
memory of each server's process tree (ps).

    python bench/workspaces_rss.py --python .cache/mlflow-workspaces/bin/python

The interpreter is the multi-tenant image's closure (image/requirements.lock,
MLflow 3.17.2 with mlflow-kubernetes-plugins). Modes: `off` (today's single
server), `on` (the two servers as the charm renders them, job execution
off), `on-jobs` (the same with MLflow's default job execution, for
comparison). Figures: CONTRIBUTING.md, "Pod memory with enable_workspaces".
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for path in ("src", "tests", "tests/unit"):
    sys.path.insert(0, str(ROOT / path))

import yaml  # noqa: E402

from fakes.kubernetes_api import FakeKubernetesApi  # noqa: E402
from fakes.network_guard import free_port  # noqa: E402
from helpers import DATABASE, STORAGE, config  # noqa: E402
from pod_spec import PodSpecInputs, render_pod_spec  # noqa: E402

STARTUP_SECONDS = 300
SETTLE_SECONDS = 20


def tree_rss_kib(pid: int):
    """Resident KiB of a process and all its descendants, and how many they are."""
    rows = [
        tuple(map(int, line.split()))
        for line in subprocess.run(
            ["ps", "-e", "-o", "pid=,ppid=,rss="], capture_output=True, text=True
        ).stdout.splitlines()
        if line.strip()
    ]
    children, rss = {}, {}
    for child, parent, kib in rows:
        children.setdefault(parent, []).append(child)
        rss[child] = kib
    total, count, stack = 0, 0, [pid]
    while stack:
        current = stack.pop()
        total, count = total + rss.get(current, 0), count + 1
        stack += children.get(current, [])
    return total, count


def containers(mode: str):
    charm_config = config(enable_workspaces=mode != "off")
    inputs = PodSpecInputs("mlflow-server", "kubeflow", {"imagePath": "x:3.17.2"}, charm_config, DATABASE, STORAGE)
    return [c for c in yaml.safe_load(render_pod_spec(inputs))["containers"] if not c.get("init")]


def measure(python: Path, mode: str, work: Path):
    with FakeKubernetesApi() as api:
        api.add_profile("alice")
        kubeconfig = api.write_kubeconfig(work / "kubeconfig")
        servers = []
        for container in containers(mode):
            port = free_port()
            command = list(container["command"])
            command[0] = str(python.parent / "mlflow")
            command[command.index("--port") + 1] = str(port)
            command[command.index("--expose-prometheus") + 1] = str(work / f"metrics-{port}")
            # Plain values as Kubernetes delivers them ($$ is one $).
            env = {k: v.replace("$$", "$") for k, v in container["envConfig"].items() if isinstance(v, str)}
            if mode == "on-jobs":
                env.pop("MLFLOW_SERVER_ENABLE_JOB_EXECUTION")
            env.update(
                PATH=f"{python.parent}:/usr/bin:/bin",
                HOME=str(work),
                KUBECONFIG=str(kubeconfig),
                MLFLOW_BACKEND_STORE_URI=f"sqlite:///{work}/mlflow.db",
                AWS_ACCESS_KEY_ID="bench",
                AWS_SECRET_ACCESS_KEY="bench",
            )
            log = open(work / f"{container['name']}.log", "w")
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            servers.append((container["name"], port, process))
            _wait_healthy(port, process)  # one at a time: the first creates the schema
        time.sleep(SETTLE_SECONDS)
        figures = {name: tree_rss_kib(process.pid) for name, _, process in servers}
        for _, _, process in servers:
            os.killpg(process.pid, 15)
        for _, _, process in servers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
    return figures


def _wait_healthy(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"a server exited with {process.returncode}: see its log")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3)
            return
        except OSError:
            time.sleep(2)
    raise SystemExit(f"no /health answer on port {port} in {STARTUP_SECONDS} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", type=Path, required=True, help="bin/python of the workspaces venv")
    parser.add_argument("--modes", default="off,on,on-jobs")
    args = parser.parse_args()
    print("load average:", os.getloadavg())
    for mode in args.modes.split(","):
        with tempfile.TemporaryDirectory(prefix=f"rss-{mode}-") as work:
            figures = measure(args.python, mode, Path(work))
        shown = {name: {"MiB": round(kib / 1024), "processes": n} for name, (kib, n) in figures.items()}
        print(mode, json.dumps(shown), "pod MiB:", round(sum(kib for kib, _ in figures.values()) / 1024))


if __name__ == "__main__":
    main()
