"""Secrets stay in Kubernetes Secrets (and, by design, the notebook PodDefault and the credentials action).

Every Scenario test is already checked by conftest's `secrets_never_leak`
(see leak_check.py). This file adds two things:

1. the check's detection power: a charm made to leak through each channel
   (log line, status, plain env, command, action output, relation data,
   stored state) must be caught;
2. the tutorial's flows with distinctive secret values, so the check can
   search for them verbatim (the contract's DB password is the word
   "password", which the charm rightly prints as a field name), plus the
   positive control that each secret did reach the place it belongs.
"""

import base64
import dataclasses
import json
import logging
from urllib.parse import quote

import pytest
import scenario
import yaml

import world
from contracts import MARIADB_UNIT_DATA, MINIO_APP_DATA

MINIO_SECRET = "S3cr3t-M1n10/key+="
DB_PASSWORD = "Db-P@ss:w0rd/%x"
ROOT_PASSWORD = "R00t-pw#42!zz"


def distinctive_state(tmp_path, **kwargs):
    data = yaml.safe_load(MINIO_APP_DATA["data"])
    data["secret-key"] = MINIO_SECRET
    minio = world.relation("object-storage", remote_app_data={**MINIO_APP_DATA, "data": yaml.safe_dump(data)})
    db_bag = {**MARIADB_UNIT_DATA, "password": DB_PASSWORD, "root_password": ROOT_PASSWORD}
    db = world.relation("db", remote_units_data={0: db_bag})
    return world.with_relation(world.with_relation(world.state(tmp_path, **kwargs), minio), db)


def secret_data(spec, name):
    (secret,) = [s for s in spec["kubernetesResources"]["secrets"] if s["name"] == name]
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


# --- 1. the check catches every channel ----------------------------------------


def leak_in_log(mp):
    import relation_data

    real = relation_data._database

    def leaky(relation):
        db = real(relation)
        logging.getLogger("charm").debug("read %r", db)
        return db

    mp.setattr(relation_data, "_database", leaky)


def leak_in_status(mp):
    import problems
    import relation_data

    real = relation_data._database

    def leaky(relation):
        raise problems.Waiting(f"waiting for mlflow-db: password {real(relation).password} refused")

    mp.setattr(relation_data, "_database", leaky)


def leak_in_plain_env(mp):
    import mlflow_workload

    real = mlflow_workload.server_env

    def leaky(config, storage, app, model):
        return {**real(config, storage, app, model), "AWS_SECRET_ACCESS_KEY": storage.secret_key}

    mp.setattr(mlflow_workload, "server_env", leaky)


def leak_in_command(mp):
    import mlflow_workload
    import pod_spec

    real = pod_spec.render_pod_spec

    def leaky(inputs):
        flag = json.dumps("--backend-store-uri=" + mlflow_workload.backend_store_uri(inputs.database))
        return real(inputs).replace('"--workers"', flag + ', "--workers"')

    mp.setattr(pod_spec, "render_pod_spec", leaky)


def leak_in_relation_data(mp):
    import mlflow_workload

    real = mlflow_workload.ingress_request

    def leaky(config, app, model, version):
        return {**real(config, app, model, version), "rewrite": ROOT_PASSWORD}

    mp.setattr(mlflow_workload, "ingress_request", leaky)


LEAKS = {
    "log line": leak_in_log,
    "status message": leak_in_status,
    "plain env": leak_in_plain_env,
    "command": leak_in_command,
    "relation data": leak_in_relation_data,
}


@pytest.mark.parametrize("channel", sorted(LEAKS))
def test_the_check_catches_a_leak_through(channel, ctx, tmp_path, monkeypatch, secrets_never_leak):
    LEAKS[channel](monkeypatch)
    with pytest.raises(AssertionError, match="secret leaked"):
        ctx.run(ctx.on.config_changed(), distinctive_state(tmp_path))
    assert secrets_never_leak.findings, "the leak was not recorded"
    secrets_never_leak.findings.clear()  # seen: the test passes


def test_the_check_catches_the_contract_db_password_in_a_uri(ctx, tmp_path, monkeypatch, secrets_never_leak):
    """With the contract's word-like password, the URI shape is what gives it away."""
    import mlflow_workload

    real = mlflow_workload.server_env
    monkeypatch.setattr(
        mlflow_workload,
        "server_env",
        lambda config, storage, app, model: {**real(config, storage, app, model), "X": "mysql://mysql:password@h/d"},
    )
    with pytest.raises(AssertionError, match="secret leaked"):
        ctx.run(ctx.on.config_changed(), world.state(tmp_path))
    secrets_never_leak.findings.clear()


def test_the_check_catches_the_db_password_in_action_output(ctx, tmp_path, monkeypatch, secrets_never_leak):
    import charm

    def leaky(self, event):
        rel = self.model.relations["db"][0]
        event.set_results({"password": rel.data[next(iter(rel.units))]["password"]})

    leaky.__name__ = "_on_get_minio_credentials"  # ops finds observers by method name
    monkeypatch.setattr(charm.MlflowServerCharm, "_on_get_minio_credentials", leaky)
    with pytest.raises(AssertionError, match="secret leaked"):
        ctx.run(ctx.on.action("get-minio-credentials"), distinctive_state(tmp_path))
    secrets_never_leak.findings.clear()


def test_the_check_catches_a_secret_in_stored_state(ctx, tmp_path, monkeypatch, secrets_never_leak):
    import charm

    real = charm.MlflowServerCharm._reconcile

    def leaky(self, event):
        real(self, event)
        self._stored.spec_hash = MINIO_SECRET

    leaky.__name__ = "_reconcile"  # ops finds observers by method name
    monkeypatch.setattr(charm.MlflowServerCharm, "_reconcile", leaky)
    with pytest.raises(AssertionError, match="secret leaked"):
        ctx.run(ctx.on.update_status(), distinctive_state(tmp_path))
    secrets_never_leak.findings.clear()


# --- 2. the flows, with distinctive secrets --------------------------------------


def test_secrets_reach_only_the_kubernetes_secrets(ctx, tmp_path, pod_specs):
    out = ctx.run(ctx.on.config_changed(), distinctive_state(tmp_path))
    assert out.unit_status == world.ROLLOUT
    out = world.rolled_out(ctx, out)
    assert out.unit_status == scenario.ActiveStatus()
    (spec,) = pod_specs
    uri = secret_data(spec, "mlflow-server-db")["MLFLOW_BACKEND_STORE_URI"]
    assert f":{quote(DB_PASSWORD, safe='')}@" in uri
    assert secret_data(spec, "mlflow-server-minio")["AWS_SECRET_ACCESS_KEY"] == MINIO_SECRET
    seldon = secret_data(spec, "mlflow-server-seldon-init-container-s3-credentials")
    assert seldon["RCLONE_CONFIG_S3_SECRET_ACCESS_KEY"] == MINIO_SECRET
    assert ROOT_PASSWORD not in json.dumps(spec)  # the root password is never used at all
    assert base64.b64encode(ROOT_PASSWORD.encode()).decode() not in json.dumps(spec)


@pytest.mark.parametrize("serve_artifacts", [False, True])
def test_notebooks_get_the_minio_key_only_without_proxied_artifacts(ctx, tmp_path, serve_artifacts):
    state = distinctive_state(tmp_path, config={"serve_artifacts": serve_artifacts})
    out = ctx.run(ctx.on.config_changed(), state)
    published = out.get_relation(world.RELATION_IDS["pod-defaults"]).local_app_data["pod-defaults"]
    assert (MINIO_SECRET in json.loads(published)["minio"]["env"].values()) is not serve_artifacts
    for rel in out.relations:
        for bag in (rel.local_app_data, rel.local_unit_data):
            assert DB_PASSWORD not in json.dumps(dict(bag), ensure_ascii=False)


EVENTS = ("install", "config_changed", "upgrade_charm", "leader_elected", "update_status")


def test_tutorial_order_with_distinctive_secrets(ctx, tmp_path, secrets_never_leak):
    """Relate one by one (the tutorial's order), then every event again, then break each relation."""
    full = distinctive_state(tmp_path)
    state = world.without(full, "object-storage")
    for endpoint in world.ALL:
        state = world.with_relation(state, full.get_relation(world.RELATION_IDS[endpoint]))
        state = ctx.run(ctx.on.relation_changed(state.get_relation(world.RELATION_IDS[endpoint])), state)
    assert state.unit_status == scenario.ActiveStatus()
    for event in EVENTS:
        state = ctx.run(getattr(ctx.on, event)(), state)
    ctx.run(ctx.on.action("get-minio-credentials"), state)
    assert ctx.action_results["secret-access-key"] == MINIO_SECRET  # the one place it is handed out
    for endpoint in world.ALL:
        ctx.run(ctx.on.relation_broken(state.get_relation(world.RELATION_IDS[endpoint])), state)
    assert secrets_never_leak.runs >= 4 + len(EVENTS) + 1 + 4


@pytest.mark.parametrize(
    "config",
    [
        {"serve_artifacts": True},
        {"enable_mlflow_nodeport": True},
        {"cors_allowed_origins": "http://10.64.140.43.nip.io", "allowed_hosts": "10.64.140.43.nip.io"},
        {"default_artifact_root": "Not A Bucket"},
        {"workers": 0},
    ],
)
def test_config_variants_with_distinctive_secrets(ctx, tmp_path, config):
    out = ctx.run(ctx.on.config_changed(), distinctive_state(tmp_path, config=config))
    if out.unit_status.name == "waiting":
        assert out.unit_status == world.ROLLOUT
    out = world.rolled_out(ctx, out)
    assert out.unit_status.name in ("active", "blocked")


def test_non_leader_and_failed_action_with_distinctive_secrets(ctx, tmp_path):
    state = dataclasses.replace(distinctive_state(tmp_path), leader=False)
    ctx.run(ctx.on.config_changed(), state)
    with pytest.raises(scenario.ActionFailed) as failure:
        ctx.run(ctx.on.action("get-minio-credentials"), world.without(state, "object-storage"))
    assert MINIO_SECRET not in failure.value.message
