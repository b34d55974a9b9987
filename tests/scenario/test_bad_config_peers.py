"""A bad config must not stall the peers: versions are listed and keys withdrawn whatever the config."""

import dataclasses
import json

import pytest
import yaml
from scenario import BlockedStatus

import world

TRACKING_ONLY = {"MLFLOW_TRACKING_URI": "http://mlflow-server.kubeflow.svc.cluster.local:5000"}


def env_of(state):
    return json.loads(world.bag(state, "pod-defaults")["pod-defaults"])["minio"]["env"]


@pytest.mark.parametrize("endpoint", ["object-storage", "ingress"])
def test_a_bad_config_still_lists_our_versions_for_sdi_peers(ctx, tmp_path, endpoint):
    # istio-pilot and minio raise NoVersionsListed in their constructors without
    # this key, and then handle none of their relations, for any application.
    state = world.deployed(ctx, tmp_path, config={"workers": 0})
    out = world.relate(ctx, state, endpoint)
    assert isinstance(out.unit_status, BlockedStatus) and "workers" in out.unit_status.message
    assert yaml.safe_load(world.bag(out, endpoint)["_supported_versions"])


@pytest.mark.parametrize("bad", [{"workers": 0}, {"mlflow_port": 80}], ids=["workers=0", "mlflow_port=80"])
def test_minio_leaving_while_the_config_is_bad_withdraws_its_keys(ctx, settled, bad):
    state = ctx.run(ctx.on.config_changed(), dataclasses.replace(settled, config={**settled.config, **bad}))
    assert isinstance(state.unit_status, BlockedStatus)
    assert "AWS_SECRET_ACCESS_KEY" in env_of(state), "a bad config alone keeps what was published"
    gone = world.unrelate(ctx, state, "object-storage")
    assert env_of(gone) == TRACKING_ONLY


def test_proxied_artifacts_with_a_bad_port_withdraw_the_keys(ctx, settled):
    config = {**settled.config, "serve_artifacts": True, "mlflow_port": 80}
    state = ctx.run(ctx.on.config_changed(), dataclasses.replace(settled, config=config))
    assert isinstance(state.unit_status, BlockedStatus) and "mlflow_port" in state.unit_status.message
    assert env_of(state) == TRACKING_ONLY
