"""The Kubeflow tutorial, end to end, on the pod spec the charm renders.

MariaDB, an S3 server and MLflow run for real on loopback; the MLflow
server is the spec's own command, env and secrets; the notebook gets only
the PodDefault's env. Each scenario runs on the image's MLflow (read from
metadata.yaml) and on the newest MLflow 3.x.
"""

import json
import math
from urllib.parse import quote

import harness
import pytest
from mlflow_venvs import NEWEST_MLFLOW, VERSIONS, image_mlflow_version, image_of
from servers import DB_PASSWORD, DB_ROOT_PASSWORD, S3_SECRET_KEY

import charm
from contracts import APP, MODEL
from pod_readiness import NO_POD_OF_SPEC

pytestmark = pytest.mark.e2e

ROLLOUT = charm.ROLLOUT
SERVICE_HOSTS = [APP, f"{APP}.{MODEL}", f"{APP}.{MODEL}.svc", f"{APP}.{MODEL}.svc.cluster.local"]


def _main(spec: dict) -> dict:
    return next(c for c in spec["containers"] if not c.get("init"))


def _assert_no_secret_outside_secrets(deployment) -> None:
    """Passwords and keys reach the pod only through its Secrets."""
    secrets = (DB_PASSWORD, quote(DB_PASSWORD, safe=""), DB_ROOT_PASSWORD, S3_SECRET_KEY)
    exposed = json.dumps([{k: v for k, v in c.items() if k != "imageDetails"} for c in deployment.spec["containers"]])
    assert not [s for s in secrets if s in exposed]
    argv = " ".join(a for c in deployment.pod.containers for a in c.argv)
    assert not [s for s in secrets if s in argv]
    assert DB_ROOT_PASSWORD not in json.dumps(harness.secret_values(deployment.spec))


def _assert_notebook_report(report: dict, version: str) -> None:
    assert report["mlflow_version"] == version
    assert report["params"] == {"alpha": "0.5", "l1_ratio": "0.5"}
    assert set(report["metrics"]) == {"rmse", "mae", "r2"}
    for name, value in report["expected_metrics"].items():
        assert math.isclose(report["metrics"][name], value, rel_tol=1e-9)
    assert report["model_versions"] == [1]
    assert report["predictions_match"] is True
    assert len(report["predictions"]) == 5


def _served_hosts(port: int, hosts) -> dict:
    return {host: harness.http_get(port, harness.API_PROBE, host=host)[0] for host in hosts}


@pytest.mark.parametrize("version", VERSIONS)
def test_tutorial_notebook_flow(deploy, s3, version):
    deployment = deploy(version)
    outcome = deployment.outcome

    # One spec, set once db and object-storage were related; that hook still
    # lacked pod-defaults (the tutorial relates admission-webhook last). No hook
    # went active before the pod of that spec ran (Juju applies a spec only
    # after the hook); update-status went active once it was ready.
    assert len(outcome.spec_hooks) == 1, outcome.history
    assert outcome.spec_hooks[0][1].startswith("blocked: missing relation pod-defaults"), outcome.history
    assert not [h for h in outcome.history[:-1] if h[1].startswith("active")], outcome.history
    assert outcome.history[-2][1] == f"waiting: {NO_POD_OF_SPEC}"
    assert outcome.history[-1][0] == "update-status"
    assert outcome.status == "active"
    _assert_no_secret_outside_secrets(deployment)
    probe = _main(deployment.spec)["kubernetes"]["readinessProbe"]["httpGet"]
    assert deployment.pod.readiness == (probe["path"], deployment.config["mlflow_port"])

    env = deployment.notebook_env
    assert set(env) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL", "MLFLOW_TRACKING_URI"}
    assert env["MLFLOW_TRACKING_URI"] == f"http://{SERVICE_HOSTS[-1]}:{deployment.port}"
    assert env["MLFLOW_S3_ENDPOINT_URL"] == s3.endpoint

    before = harness.scrape(deployment.port)
    report = deployment.run_notebook()
    _assert_notebook_report(report, version)

    # The tutorial's bucket listing: the model's files, requirements.txt among them.
    assert report["artifact_uri"].startswith(f"s3://{harness.BUCKET}/")
    assert report["bucket_keys"] == s3.keys(harness.BUCKET)
    assert any(k.endswith("/MLmodel") for k in report["bucket_keys"])
    assert report["requirements_key"] in report["bucket_keys"]
    assert f"mlflow=={version}" in report["requirements_txt"].splitlines()

    # In-cluster service names and the ingress host are served alike.
    statuses = _served_hosts(
        deployment.port, [f"{h}:{deployment.port}" for h in SERVICE_HOSTS] + [harness.INGRESS_HOST]
    )
    assert set(statuses.values()) == {200}, statuses

    # Prometheus request counters counted the notebook's requests.
    after = harness.scrape(deployment.port)
    posts = [k for k in after if k.startswith("mlflow_http_request_total") and 'method="POST"' in k]
    assert posts, sorted(after)
    assert sum(after[k] for k in posts) > sum(before.get(k, 0) for k in posts)


@pytest.mark.parametrize("version", VERSIONS)
def test_proxied_artifacts_need_no_s3_keys_in_notebooks(deploy, s3, version):
    deployment = deploy(version, {"serve_artifacts": True})
    command = _main(deployment.spec)["command"]
    assert "--serve-artifacts" in command
    assert "--default-artifact-root" not in command

    env = deployment.notebook_env
    assert env["MLFLOW_TRACKING_URI"] == f"http://{SERVICE_HOSTS[-1]}:{deployment.port}"
    assert not [k for k in env if k.startswith("AWS_") or k == "MLFLOW_S3_ENDPOINT_URL"]
    report = deployment.run_notebook()
    _assert_notebook_report(report, version)
    assert report["bucket_keys"] is None  # the notebook had no keys to list the bucket with
    assert report["artifact_uri"].startswith("mlflow-artifacts:")

    # The server wrote the model to the bucket on the notebook's behalf.
    keys = s3.keys(harness.BUCKET)
    assert any(k.endswith("/requirements.txt") for k in keys), keys
    assert any(k.endswith("/MLmodel") for k in keys), keys


@pytest.mark.parametrize("version", VERSIONS)
def test_allowed_hosts_narrowed_to_the_ingress_host(deploy, version):
    deployment = deploy(version, {"allowed_hosts": harness.INGRESS_HOST})
    allowed = _main(deployment.spec)["envConfig"]["MLFLOW_SERVER_ALLOWED_HOSTS"]
    assert allowed != "*" and harness.INGRESS_HOST in allowed.split(",")

    wanted = [f"{h}:{deployment.port}" for h in SERVICE_HOSTS] + [harness.INGRESS_HOST]
    assert set(_served_hosts(deployment.port, wanted).values()) == {200}

    foreign = harness.http_get(deployment.port, harness.API_PROBE, host=harness.FOREIGN_HOST)[0]
    if int(version.split(".")[0]) >= 3:
        assert foreign == 403  # MLflow 3.5+ checks the Host header
    else:
        assert foreign == 200  # MLflow 2.x has no Host check and ignores the variable
    # The kubelet's probes still pass, whatever Host they send.
    path, port = deployment.pod.readiness
    assert harness.http_get(port, path, host=harness.FOREIGN_HOST)[0] == 200


def _schema_version(mariadb, database: str) -> str:
    return mariadb.sql(f"SELECT version_num FROM `{database}`.alembic_version;").split()[-1]


def test_database_of_the_image_mlflow_is_migrated_for_the_newest(deploy, mariadb):
    old, new = image_mlflow_version(), NEWEST_MLFLOW
    first = deploy(old)
    first_init = next(c for c in first.pod.containers if c.init)
    assert "empty mlflow database" in first.pod.tail(first_init)  # a new database is left to the server
    logged = first.run_notebook()
    _assert_notebook_report(logged, old)
    first.pod.stop()

    # `juju attach-resource mlflow-server oci-image=<newer image>`: same database, new spec.
    upgraded = first.driver.attach_image(first.outcome.state, image_of(new))
    assert upgraded.spec["containers"][0]["imageDetails"]["imagePath"] == image_of(new)
    assert upgraded.spec_hooks[-1] == ("upgrade-charm (new oci-image)", f"waiting: {ROLLOUT}")
    assert [c["name"] for c in upgraded.spec["containers"] if c.get("init")] == ["mlflow-db-upgrade"]

    # As Kubernetes runs the pod: the init container migrates the schema to completion
    # before the server starts, so the server finds its tables current.
    schema_before = _schema_version(mariadb, first.database)
    pod = deploy.start_pod(upgraded, first.workdir)
    init = next(c for c in pod.containers if c.init)
    assert "mlflow database schema is up to date" in pod.tail(init)
    schema_after_init = _schema_version(mariadb, first.database)
    assert schema_after_init != schema_before
    pod.wait_ready(timeout=240)
    assert "Creating initial MLflow database tables" not in pod.tail(pod.main[0], 400)
    assert _schema_version(mariadb, first.database) == schema_after_init

    # The old run and registered model are intact and usable from MLflow 3.
    status, body = harness.http_get(pod.readiness[1], f"/api/2.0/mlflow/runs/get?run_id={logged['run_id']}")
    assert status == 200
    metrics = {m["key"]: m["value"] for m in json.loads(body)["run"]["data"]["metrics"]}
    assert metrics == pytest.approx(logged["metrics"])
    report = harness.run_notebook(first.notebook_env, first.workdir, pod.image_bin)
    assert report["mlflow_version"] == new
    assert logged["run_id"] in report["runs_before"]
    assert report["model_versions"] == [1, 2]
    assert report["predictions_match"] is True  # version 1, logged by the old MLflow, loads and predicts


def test_a_settled_unit_reports_mlflow_dying_and_coming_back(deploy):
    """Issue 14.1: update-status on a settled unit asks MLflow itself, so
    `juju status` stops saying Active when the process dies, and says it again
    once MLflow serves again."""
    deployment = deploy(image_mlflow_version())
    driver, state = deployment.driver, deployment.outcome.state
    assert deployment.outcome.status == "active"
    assert driver.update_status(state).status == "active", "settled and serving: still Active"

    deployment.pod.stop()  # the MLflow process killed; Kubernetes has not noticed yet
    down = driver.update_status(state)
    assert down.status == f"waiting: {charm.unreachable(APP, MODEL)}", down.history[-3:]

    deployment.pod.start()
    deployment.pod.wait_ready(timeout=240)
    back = driver.update_status(down.state)
    assert back.status == "active", back.history[-3:]
