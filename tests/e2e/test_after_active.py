"""Issue 14 on real MLflow: keys holding `$` (item 5) and config changes after
proxied artifacts were logged (item 9), through the tutorial's notebook flow."""

import dataclasses

import harness
import pytest
from mlflow_venvs import VERSIONS, image_mlflow_version
from servers import S3_DOLLAR_ACCESS_KEY as ACCESS_KEY
from servers import S3_DOLLAR_SECRET_KEY as SECRET_KEY

pytestmark = pytest.mark.e2e

# ACCESS_KEY and SECRET_KEY hold `$$` and `$(...)`, which Kubernetes would
# rewrite were they sent as written; SeaweedFS refuses them if they change.


def _main(spec: dict) -> dict:
    return next(c for c in spec["containers"] if not c.get("init"))


def test_minio_keys_holding_dollars_reach_the_server_and_the_notebook_unchanged(deploy):
    # On the image's MLflow only: what could change a `$` is the charm's spec and
    # Kubernetes' expansion of it (pod_runner.py), before any MLflow reads the keys;
    # boto3 signs with them alike under 2.22.0 and 3.17.2, and a run is a deploy and a notebook.
    deployment = deploy(image_mlflow_version(), minio={"access-key": ACCESS_KEY, "secret-key": SECRET_KEY})
    assert deployment.outcome.status == "active"
    server_env = deployment.pod.main[0].env
    assert (server_env["AWS_ACCESS_KEY_ID"], server_env["AWS_SECRET_ACCESS_KEY"]) == (ACCESS_KEY, SECRET_KEY)

    # What the notebook process gets: the PodDefault env as the webhook and the kubelet deliver it.
    delivered = harness.notebook_env(deployment.notebook_env, deployment.workdir, deployment.image_bin)
    assert (delivered["AWS_ACCESS_KEY_ID"], delivered["AWS_SECRET_ACCESS_KEY"]) == (ACCESS_KEY, SECRET_KEY)
    report = deployment.run_notebook()
    assert report["predictions_match"] is True
    assert report["requirements_key"] in report["bucket_keys"]


def _reconfigure(deploy, deployment, **options):
    """`juju config`, then the new pod as Kubernetes rolls it out, then update-status."""
    driver = deployment.driver
    state = dataclasses.replace(deployment.outcome.state, config={**deployment.config, **options})
    outcome = driver.outcome(driver.run("config-changed", driver.ctx.on.config_changed(), state))
    assert len(outcome.specs) == len(deployment.outcome.specs) + 1, outcome.history[-1]
    deployment.pod.stop()
    pod = deploy.start_pod(outcome, deployment.workdir)
    pod.wait_ready(timeout=240)
    deploy.kubernetes.apply_spec(outcome.spec)
    outcome = driver.update_status(outcome.state)
    assert outcome.status == "active", outcome.history[-3:]
    return outcome, pod


@pytest.mark.parametrize("version", VERSIONS)
def test_artifacts_logged_through_the_proxy_stay_readable_after_config_changes(deploy, s3, version):
    deployment = deploy(version, {"serve_artifacts": True})
    logged = deployment.run_notebook()
    assert logged["artifact_uri"].startswith("mlflow-artifacts:")
    assert logged["predictions_match"] is True

    # Proxying off, and a new bucket for new experiments, in one `juju config`.
    outcome, pod = _reconfigure(deploy, deployment, serve_artifacts=False, default_artifact_root="models")
    command = _main(outcome.spec)["command"]
    assert command[command.index("--default-artifact-root") + 1] == "s3://models/"
    assert "models" in [b["Name"] for b in s3.client().list_buckets()["Buckets"]]

    # The next notebook loads model version 1, whose files only the proxy can read.
    report = harness.run_notebook(outcome.pod_defaults["minio"]["env"], deployment.workdir, pod.image_bin)
    assert logged["run_id"] in report["runs_before"]
    assert report["model_versions"] == [1, 2]
    assert report["predictions_match"] is True
    status, body = harness.http_get(
        pod.readiness[1], f"/api/2.0/mlflow/artifacts/list?run_id={logged['run_id']}", host="localhost"
    )
    assert status == 200, body[:300]
