"""Equal inputs, equal spec; no-op hooks set no spec.

set_spec makes Juju roll the MLflow pod, so it must be called only when the
spec really changes: never for update-status, a repeated relation-changed
with equal data (in whatever key order the peer wrote it), or any event that
changes nothing the spec is made of. The spec itself must be byte-identical
for equal inputs across processes (hash seeds) and dict orders.
"""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import scenario
import yaml

import world
from contracts import MARIADB_UNIT_DATA, MINIO_APP_DATA

TESTS = Path(__file__).resolve().parents[1]


def reordered(state: scenario.State) -> scenario.State:
    """The same state, every peer bag and minio's YAML document written in reverse key order."""
    data = yaml.safe_load(MINIO_APP_DATA["data"])
    minio_yaml = yaml.safe_dump(dict(reversed(list(data.items()))), sort_keys=False)
    changes = {
        "object-storage": {
            "remote_app_data": {"data": minio_yaml, "_supported_versions": MINIO_APP_DATA["_supported_versions"]}
        },
        "db": {"remote_units_data": {0: dict(reversed(list(MARIADB_UNIT_DATA.items())))}},
        "ingress": {"remote_app_data": {"_supported_versions": "- v2\n- v1\n"}},
    }
    for endpoint, change in changes.items():
        state = world.with_relation(state, world.relation(endpoint, **change))
    return state


def revision(spec) -> str:
    return spec["kubernetesResources"]["pod"]["annotations"]["mlflow-server.charm/spec-revision"]


def spec_bytes(spec) -> bytes:
    return json.dumps(spec, ensure_ascii=False).encode()  # insertion order kept: the render's order


def test_reordered_peer_data_gives_a_byte_identical_spec(ctx, tmp_path, pod_specs):
    state = world.state(tmp_path)
    other = reordered(state)
    assert other.get_relation(2).remote_app_data["data"] != state.get_relation(2).remote_app_data["data"]
    # Two units with the same stored state: both set generation 1 of the same unit's spec.
    ctx.run(ctx.on.config_changed(), world.with_nonce(state))
    ctx.run(ctx.on.config_changed(), world.with_nonce(other))
    assert len(pod_specs) == 2
    assert revision(pod_specs[0]) == revision(pod_specs[1]) == f"mlflow-server/0#1-{world.NONCE}"
    assert spec_bytes(pod_specs[0]) == spec_bytes(pod_specs[1])


def test_reordered_peer_data_is_a_no_op_after_active(ctx, tmp_path, pod_specs):
    out = ctx.run(ctx.on.config_changed(), world.state(tmp_path))
    assert out.unit_status == world.ROLLOUT
    out = world.rolled_out(ctx, out)
    assert out.unit_status == scenario.ActiveStatus()
    other = reordered(out)
    for endpoint in ("object-storage", "db", "ingress"):
        out = ctx.run(ctx.on.relation_changed(other.get_relation(world.RELATION_IDS[endpoint])), other)
        assert out.unit_status == scenario.ActiveStatus()
    assert len(pod_specs) == 1


# Runs the charm in a fresh interpreter and prints the spec it sets. The
# network guard refuses every connection: the spec is set whatever the bucket
# check says, and that check fails fast (Waiting) without leaving the process.
SUBPROCESS_RUN = r"""
import json, sys, tempfile
from pathlib import Path
sys.path[:0] = [sys.argv[1], sys.argv[2], sys.argv[3]]
import scenario, world
from scenario.mocking import _MockModelBackend
from fakes.network_guard import loopback_only
from charm import MlflowServerCharm
specs = []
_MockModelBackend.pod_spec_set = lambda self, spec, k8s_resources=None: specs.append(spec)
with loopback_only(("minio.kubeflow", "minio")) as guard:
    guard.loopback_ports = set()
    ctx = scenario.Context(MlflowServerCharm)
    ctx.run(ctx.on.config_changed(), world.with_nonce(world.state(Path(tempfile.mkdtemp()))))
assert not guard.violations, guard.violations
sys.stdout.write(json.dumps(specs, ensure_ascii=False))
"""


def test_spec_identical_across_processes_with_different_hash_seeds():
    outputs = set()
    for seed in ("0", "1", "987"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "KUBECONFIG": os.devnull}
        run = subprocess.run(
            [sys.executable, "-c", SUBPROCESS_RUN, str(TESTS.parent / "src"), str(TESTS), str(TESTS / "scenario")],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stderr.decode()[-2000:]
        (spec,) = json.loads(run.stdout)
        outputs.add(run.stdout)
        assert spec["containers"][1]["name"] == "mlflow-server"
        assert revision(spec) == f"mlflow-server/0#1-{world.NONCE}"
    assert len(outputs) == 1


# --- no-op hooks ------------------------------------------------------------------


def test_update_status_never_sets_the_spec(ctx, settled_in_one_hook, pod_specs):
    state = settled_in_one_hook
    for _ in range(5):
        state = ctx.run(ctx.on.update_status(), state)
        assert state.unit_status == scenario.ActiveStatus()
    assert len(pod_specs) == 1


@pytest.mark.parametrize("endpoint", world.ALL)
def test_repeated_relation_changed_with_equal_data_never_sets_the_spec(ctx, settled_in_one_hook, pod_specs, endpoint):
    state = settled_in_one_hook
    for _ in range(3):
        state = ctx.run(ctx.on.relation_changed(state.get_relation(world.RELATION_IDS[endpoint])), state)
        assert state.unit_status == scenario.ActiveStatus()
    assert len(pod_specs) == 1


@pytest.mark.parametrize("event", ["config_changed", "leader_elected", "install", "upgrade_charm"])
def test_events_that_change_nothing_never_set_the_spec(ctx, settled_in_one_hook, pod_specs, event):
    out = ctx.run(getattr(ctx.on, event)(), settled_in_one_hook)
    assert out.unit_status == scenario.ActiveStatus()
    assert len(pod_specs) == 1


def test_no_op_while_blocked_sets_no_spec_again(ctx, tmp_path, pod_specs):
    """Blocked on a missing relation with the spec already set: repeated hooks do not re-set it."""
    state = ctx.run(ctx.on.config_changed(), world.state(tmp_path, endpoints=("db", "object-storage")))
    assert state.unit_status.name == "blocked"
    assert len(pod_specs) == 1
    for _ in range(3):
        state = ctx.run(ctx.on.relation_changed(state.get_relation(world.RELATION_IDS["db"])), state)
        state = ctx.run(ctx.on.update_status(), state)
    assert len(pod_specs) == 1


def test_a_real_change_sets_the_spec_once(ctx, settled_in_one_hook, pod_specs):
    changed = dataclasses.replace(settled_in_one_hook, config={"workers": 8})
    out = ctx.run(ctx.on.config_changed(), changed)
    assert out.unit_status == world.ROLLOUT
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == scenario.ActiveStatus()
    assert len(pod_specs) == 2
    assert "8" in pod_specs[1]["containers"][1]["command"]
    assert revision(pod_specs[1]).startswith("mlflow-server/0#2-")


def test_a_unit_that_lost_its_state_never_repeats_a_revision(ctx, tmp_path, pod_specs):
    """The operator pod recreated without its state: the counter starts again, the
    revision must not, or a secret-only change leaves the pod template unchanged."""
    ctx.run(ctx.on.config_changed(), world.state(tmp_path))
    rotated = yaml.safe_load(MINIO_APP_DATA["data"])
    rotated["secret-key"] = "rotated-after-the-loss"
    data = {**MINIO_APP_DATA, "data": yaml.safe_dump(rotated)}
    ctx.run(ctx.on.config_changed(), world.state(tmp_path, object_storage={"remote_app_data": data}))
    assert len(pod_specs) == 2
    assert revision(pod_specs[0]).startswith("mlflow-server/0#1")
    assert revision(pod_specs[1]).startswith("mlflow-server/0#1")
    assert revision(pod_specs[1]) != revision(pod_specs[0])
