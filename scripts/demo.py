#!/usr/bin/env python3
"""`make demo`: the Charmed Kubeflow MLflow tutorial on this machine, narrated.

    1. peers      a MariaDB (or, where none can be had, SQLite) and an S3 server on loopback
    2. charm      the tutorial's `juju deploy` and `juju relate` commands, run through
                  Scenario; the relation data the charm saw and the pod spec it set
    3. server     the spec's init container, then its MLflow server, as Kubernetes runs them
    4. notebook   a Kubeflow notebook with only the PodDefault's env trains and registers
                  ElasticnetWineModel; its metrics, the model and the bucket's files.
                  It predicts a wine's alcohol content from scikit-learn's wine data:
                  the tutorial's notebook predicts wine quality from a CSV it downloads,
                  with the same MLflow calls and model name
    5. the MLflow UI stays up until Ctrl-C

Options: --mlflow VERSION (default: the image's, from metadata.yaml), --port PORT,
--no-wait (stop after the notebook instead of keeping the UI up), --sqlite (skip MariaDB).
Pass them through make as `make demo ARGS="--mlflow 3.17.2"`.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "e2e"), str(ROOT / "tests"), str(ROOT / "src")]

import harness  # noqa: E402
import yaml  # noqa: E402
from charm_driver import CharmDriver  # noqa: E402
from mlflow_venvs import CACHE, ensure_venv, image_mlflow_version, image_of  # noqa: E402
from pod_runner import Pod  # noqa: E402
from servers import MariaDB, S3Server, free_port, mariadb_available  # noqa: E402

from contracts import ISTIO_PILOT_APP_DATA  # noqa: E402
from fakes.kubernetes_api import FakeKubernetesApi  # noqa: E402

SECRET_FIELDS = ("password", "root_password", "secret-key")


def say(text: str = "") -> None:
    print(text, flush=True)


def step(number: int, title: str) -> None:
    say()
    say(f"== {number}. {title} " + "=" * max(0, 66 - len(title)))


def masked(value: str) -> str:
    return f"<{len(value)} characters, not shown>"


def readable(data: dict) -> dict:
    """A relation bag as a reader wants it: nested YAML/JSON values parsed, secrets masked."""
    shown = {}
    for key, value in data.items():
        if key in SECRET_FIELDS:
            value = masked(value)
        elif key in ("_supported_versions", "data"):
            value = yaml.safe_load(value)
            if isinstance(value, dict):
                value = {k: masked(v) if k in SECRET_FIELDS else v for k, v in value.items()}
        shown[key] = value
    return shown


def show_yaml(data: dict, indent: str = "    ") -> None:
    for line in yaml.safe_dump(data, sort_keys=False, width=110).splitlines():
        say(indent + line)


def compact(status: str, limit: int = 100) -> str:
    """A status for one line: long ones keep what is wrong, not the commands to fix it."""
    if len(status) <= limit:
        return status
    cut = status.find(": ", 30)
    return (status[:cut] if 0 < cut < limit else status[: limit - 2]) + " …"


def show_transitions(history) -> None:
    """Each status once: the hooks that led to it, then the status."""
    groups = []  # [first hook, last hook, count, status]
    for label, status in history:
        if groups and groups[-1][3] == status:
            groups[-1][1:3] = [label, groups[-1][2] + 1]
        else:
            groups.append([label, label, 1, status])
    for first, last, count, status in groups:
        # object-storage-relation-created .. changed: the endpoint once, not three times.
        common = os.path.commonprefix([first, last])
        common = common[: common.rfind("-") + 1]
        hooks = first if count == 1 else f"{first} .. {last[len(common) :]} ({count} hooks)"
        say(f"    {hooks:<50} -> {compact(status)}")


def masked_spec(spec: dict) -> dict:
    """The pod spec with every Secret value replaced: they hold passwords and keys."""
    shown = json.loads(json.dumps(spec))
    for container in shown["containers"]:
        if container["name"] == "mlflow-db-upgrade":
            container["command"][-1] = "<templates/db_upgrade.py>"
    for secret in shown.get("kubernetesResources", {}).get("secrets", []):
        secret["data"] = dict.fromkeys(secret["data"], "<base64, not shown>")
    return shown


def try_install_mariadb() -> str:
    """Install Debian's mariadb-server when we may; return why MariaDB is still missing, or ''."""
    reason = mariadb_available()
    if not reason:
        return ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"{reason}; run `sudo apt-get install mariadb-server` to use it"
    say("  MariaDB is not installed: trying `apt-get install mariadb-server` (a minute or two)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "mariadb-server"],
    ):
        if subprocess.run(command, env=env, capture_output=True, check=False).returncode != 0:  # noqa: S603
            return f"`{' '.join(command)}` failed"
    return mariadb_available() or ""


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            s.bind(("0.0.0.0", port))  # noqa: S104 - the spec's server binds all interfaces
            return True
        except OSError:
            return False


def _stop_on_signal(signum, _frame):
    raise KeyboardInterrupt


def main() -> int:
    # Ctrl-C, or tox/make passing on a SIGTERM, stops every process the demo started.
    signal.signal(signal.SIGINT, _stop_on_signal)
    signal.signal(signal.SIGTERM, _stop_on_signal)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mlflow", default=image_mlflow_version(), help="MLflow version of the image to run")
    parser.add_argument("--port", type=int, default=5000, help="the charm's mlflow_port (default 5000)")
    parser.add_argument("--no-wait", action="store_true", help="stop after the notebook")
    parser.add_argument("--sqlite", action="store_true", help="use the SQLite fallback even where MariaDB exists")
    args = parser.parse_args()
    port = args.port if port_is_free(args.port) else free_port()

    workdir = CACHE / "demo"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    stack = []  # things to stop, last first

    try:
        step(0, f"set up: MLflow {args.mlflow} (the image's version is {image_mlflow_version()})")
        image_bin = ensure_venv(args.mlflow, log=lambda m: say(f"  {m}"))
        say(f"  MLflow {args.mlflow} is in {image_bin.parent.relative_to(ROOT)}: it plays the role of the image")

        step(1, "peers on loopback: MariaDB (mlflow-db) and an S3 server (minio)")
        missing = "--sqlite was given" if args.sqlite else try_install_mariadb()
        if missing:
            say(f"  MariaDB is not available: {missing}.")
            say("  Falling back to an embedded SQLite store: the charm still gets mariadb's relation data,")
            say("  but the pod's MLFLOW_BACKEND_STORE_URI secret is replaced by a SQLite file.")
            mariadb_unit = {
                "database": "mlflow",
                "host": "127.0.0.1",
                "port": "3306",
                "user": "mlflow",
                "password": "p@ss:w/rd#50% it's",  # noqa: S106 - never used: no server
                "root_password": "unused",  # noqa: S106
            }
            overrides = {"MLFLOW_BACKEND_STORE_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
        else:
            (workdir / "mariadb").mkdir()
            db = MariaDB(workdir / "mariadb").start()
            stack.append(db.stop)
            db.create_database("mlflow")
            mariadb_unit = db.unit_data("mlflow")
            overrides = {}
            say(
                f"  MariaDB on 127.0.0.1:{db.port}, database `mlflow`, user `mlflow` "
                "(its password holds @ : / # % ' and a space)"
            )
        s3 = S3Server(workdir, record_requests=False).start()
        stack.append(s3.stop)
        say(f"  S3 server (SeaweedFS, a Go server like MinIO) at {s3.endpoint}: signature v4, path-style, minio's keys")

        step(2, "the charm: the tutorial's deploy and relate commands (Scenario)")
        kubernetes = FakeKubernetesApi().__enter__()
        stack.append(lambda: kubernetes.__exit__(None, None, None))
        kubernetes.pod_count = 0
        # Statuses are shown once per change below, not after every hook.
        driver = CharmDriver(workdir, kubernetes.write_kubeconfig(workdir / "kubeconfig"))
        say("  $ juju deploy mlflow-server; juju deploy charmed-osm-mariadb-k8s mlflow-db")
        say("  $ juju relate minio mlflow-server; juju relate istio-pilot mlflow-server")
        say("  $ juju relate mlflow-db mlflow-server; juju relate mlflow-server admission-webhook")
        config = {"mlflow_port": port}
        outcome = driver.tutorial(image_of(args.mlflow), s3.app_data(), mariadb_unit, config)
        say("  the unit's status as the hooks ran (each change once):")
        show_transitions(outcome.history)
        say()
        say("  relation data the charm saw (secrets masked):")
        show_yaml(
            {
                "object-storage (minio, app bag)": readable(s3.app_data()),
                "db (mlflow-db/0, unit bag)": readable(mariadb_unit),
                "ingress (istio-pilot, app bag)": readable(dict(ISTIO_PILOT_APP_DATA)),
            }
        )
        say("  what the charm published:")
        defaults = outcome.pod_defaults
        env = defaults["minio"]["env"]
        show_yaml(
            {
                "ingress (app bag)": readable(outcome.app_bag("ingress")),
                "pod-defaults (PodDefault mlflow-server-minio, env)": {
                    k: masked(v) if k == "AWS_SECRET_ACCESS_KEY" else v for k, v in env.items()
                },
            }
        )
        say()
        say("  the pod spec it set (Secret values hidden):")
        for line in yaml.safe_dump(masked_spec(outcome.spec), sort_keys=False, width=110).splitlines():
            say(f"    {line}")

        step(3, "the MLflow server, as Kubernetes runs the pod")
        pod = Pod(outcome.spec, image_bin, workdir / "pod", env_overrides=overrides)
        stack.append(pod.stop)
        for container in pod.run_init_containers():
            say(f"  init container {container.name}: {pod.tail(container, 1).strip()}")
        say(f"  $ {' '.join(pod.main[0].argv)}")
        say(f"    (env: {', '.join(sorted(pod.main[0].env))}; logs in {pod.log_path(pod.main[0]).relative_to(ROOT)})")
        started = time.monotonic()
        pod.start()
        pod.wait_ready(timeout=240)
        path, _ = pod.readiness
        say(f"  readiness probe {path} answered after {time.monotonic() - started:.0f} s")
        # As Juju and Kubernetes do after the hook: the pod runs the spec the charm set.
        kubernetes.apply_spec(outcome.spec)
        kubernetes.pod_count, kubernetes.pod_ready = 1, True
        before = len(outcome.history)
        outcome = driver.update_status(outcome.state)
        say("  the charm sees the pod ready:")
        show_transitions(outcome.history[before:])

        step(4, "a Kubeflow notebook with the mlflow-server-minio PodDefault")
        tracking = harness.loopback_tracking_uri(defaults["minio"]["env"]["MLFLOW_TRACKING_URI"])
        say(f"  MLFLOW_TRACKING_URI {defaults['minio']['env']['MLFLOW_TRACKING_URI']} -> {tracking} (loopback here)")
        say("  training an ElasticNet that predicts a wine's alcohol content from its 12 other")
        say("  measurements (scikit-learn's wine data, no download; the tutorial's notebook predicts")
        say("  wine quality from a CSV it downloads, with the same MLflow calls), logging it to MLflow ...")
        report = harness.run_notebook(defaults["minio"]["env"], workdir, image_bin)
        say(f"  run {report['run_id']}: params {report['params']}")
        say("  metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(report["metrics"].items())))
        say(f"  registered model ElasticnetWineModel, versions {report['model_versions']}")
        first = [round(p, 3) for p in report["predictions"][:3]]
        say(f"  models:/ElasticnetWineModel/1 loaded back, predicting alcohol (% vol): {first} ...")
        say(f"  bucket `{harness.BUCKET}` holds:")
        for key in s3.keys(harness.BUCKET):
            say(f"    {key}")
        if report.get("requirements_txt"):
            say(f"  downloaded requirements.txt: {report['requirements_txt'].split()}")

        step(5, "the MLflow UI")
        say(f"  http://127.0.0.1:{port}/   (in Kubeflow: http://<gateway>/mlflow/#/)")
        say(f"  the model: http://127.0.0.1:{port}/#/models/ElasticnetWineModel")
        if args.no_wait:
            return 0
        say("  serving until Ctrl-C ...")
        while pod.process.poll() is None:
            time.sleep(1)
        say(f"  the MLflow server exited ({pod.process.returncode}):\n{pod.tail(pod.main[0])}")
        return 1
    except KeyboardInterrupt:
        say("\n  Ctrl-C: stopping")
        return 0
    finally:
        for stop in reversed(stack):
            stop()


if __name__ == "__main__":
    sys.exit(main())
