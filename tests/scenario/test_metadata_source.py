"""Scenario reads the charm's metadata from metadata.yaml, although charmcraft.yaml exists.

ops-scenario prefers a charmcraft.yaml that carries name, summary and
description; ours carries only how to pack, so metadata.yaml, config.yaml and
actions.yaml (the files Juju 2.9 reads) stay the ones every test runs against.
"""

import scenario

import world


def test_metadata_config_and_actions_come_from_the_juju_files(ctx):
    spec = ctx.charm_spec
    assert spec.meta["name"] == "mlflow-server"
    assert set(spec.meta["requires"]) == {"db", "object-storage", "ingress", "pod-defaults"}
    assert spec.meta["requires"]["ingress"]["versions"] == ["v1", "v2"]  # SDI reads these
    assert "mlflow_port" in spec.config["options"]
    assert set(spec.actions) == {
        "get-minio-credentials",
        "confirm-artifacts-copied",
        "sync-profiles",
        "move-to-workspace",
    }


def test_a_hook_sees_the_endpoints_metadata_yaml_declares(ctx, tmp_path):
    out = ctx.run(ctx.on.config_changed(), world.state(tmp_path, endpoints=()))
    assert out.unit_status == scenario.BlockedStatus(
        "missing relations db, object-storage, ingress, pod-defaults: run `juju relate mlflow-db mlflow-server`, "
        "`juju relate minio mlflow-server`, `juju relate istio-pilot mlflow-server`, "
        "`juju relate mlflow-server admission-webhook`"
    )
