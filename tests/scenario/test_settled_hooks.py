"""A settled unit (Active, every peer ready) skips work only where nothing changed.

update-status reads nothing, and a relation-changed reads only its own
endpoint (bench/hooks.py counts the hook tool calls); these tests hold the
other half: a peer that really sends new data is still acted on.
"""

import dataclasses
import json

from scenario import ActiveStatus

import world
from contracts import MARIADB_UNIT_DATA

NEW_MINIO_DATA = (
    "access-key: minio\nnamespace: kubeflow\nport: 9000\nsecret-key: rotated-secret-1\nsecure: false\nservice: minio\n"
)


def revision(spec):
    return spec["kubernetesResources"]["pod"]["annotations"]["mlflow-server.charm/spec-revision"]


def changed(ctx, state, endpoint, **changes):
    state = world.update_relation(state, endpoint, **changes)
    return ctx.run(ctx.on.relation_changed(state.get_relation(world.RELATION_IDS[endpoint])), state)


def test_minio_rotating_its_secret_key_reaches_the_pod_and_the_notebooks(ctx, settled, pod_specs):
    new_data = {"_supported_versions": "- v1\n", "data": NEW_MINIO_DATA}
    out = changed(ctx, settled, "object-storage", remote_app_data=new_data)
    assert out.unit_status == world.ROLLOUT
    assert len(pod_specs) == 2, "the new key must reach the pod's secret"
    assert revision(pod_specs[1]) != revision(pod_specs[0]), "a secret-only change must roll the pod"
    assert pod_specs[1]["containers"] == pod_specs[0]["containers"]
    out = world.rolled_out(ctx, out)
    assert out.unit_status == ActiveStatus()
    env = json.loads(world.bag(out, "pod-defaults")["pod-defaults"])["minio"]["env"]
    assert env["AWS_SECRET_ACCESS_KEY"] == "rotated-secret-1"


def test_a_new_database_password_reaches_the_pod(ctx, settled, pod_specs):
    unit_data = dict(MARIADB_UNIT_DATA, password="new-password-2")
    out = changed(ctx, settled, "db", remote_units_data={0: unit_data})
    assert out.unit_status == world.ROLLOUT
    assert len(pod_specs) == 2
    assert revision(pod_specs[1]) != revision(pod_specs[0]), "a password-only change must roll the pod"
    assert world.rolled_out(ctx, out).unit_status == ActiveStatus()


def test_unchanged_relation_data_sets_no_spec(ctx, settled, pod_specs):
    out = settled
    for endpoint in world.ALL:
        out = ctx.run(ctx.on.relation_changed(out.get_relation(world.RELATION_IDS[endpoint])), out)
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == ActiveStatus()
    assert len(pod_specs) == 1


def test_a_config_change_after_settling_still_applies(ctx, settled, pod_specs):
    out = world.active(ctx, ctx.on.config_changed(), dataclasses.replace(settled, config={"workers": 2}))
    assert out.unit_status == ActiveStatus()
    assert len(pod_specs) == 2
    server = next(c for c in pod_specs[-1]["containers"] if c["name"] == "mlflow-server")
    assert "--workers 2" in " ".join(server["command"])
