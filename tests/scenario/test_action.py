"""`juju run-action mlflow-server/0 get-minio-credentials --wait`."""

import pytest
from scenario import ActionFailed

import world


def test_returns_the_keys_minio_sent(ctx, tmp_path):
    ctx.run(ctx.on.action("get-minio-credentials"), world.state(tmp_path))
    assert ctx.action_results == {"access-key": "minio", "secret-access-key": "minio123"}


def test_works_on_a_non_leader_unit_too(ctx, tmp_path):
    ctx.run(ctx.on.action("get-minio-credentials"), world.state(tmp_path, leader=False))
    assert ctx.action_results == {"access-key": "minio", "secret-access-key": "minio123"}


def test_fails_naming_the_missing_relation(ctx, tmp_path):
    state = world.state(tmp_path, endpoints=("db", "ingress"))
    with pytest.raises(ActionFailed) as failed:
        ctx.run(ctx.on.action("get-minio-credentials"), state)
    assert "object-storage" in failed.value.message and "juju relate minio mlflow-server" in failed.value.message


def test_fails_while_minio_has_not_sent_its_data(ctx, tmp_path):
    state = world.state(tmp_path, object_storage={"remote_app_data": {"_supported_versions": "- v1\n"}})
    with pytest.raises(ActionFailed) as failed:
        ctx.run(ctx.on.action("get-minio-credentials"), state)
    assert "waiting for minio" in failed.value.message


def test_fails_on_invalid_minio_data_without_echoing_it(ctx, tmp_path):
    bad = {"_supported_versions": "- v1\n", "data": "access-key: minio\nsecret-key: 12345\nservice: minio\n"}
    with pytest.raises(ActionFailed) as failed:
        ctx.run(ctx.on.action("get-minio-credentials"), world.state(tmp_path, object_storage={"remote_app_data": bad}))
    assert "invalid object-storage data" in failed.value.message and "12345" not in failed.value.message
