"""Issue 14 (items 3, 4, 5, 7, 9): after Active, config and peer changes keep the truth.

GIVEN the tutorial's settled deployment (or its relations with one field
changed), WHEN the operator or a peer changes something, THEN nothing stays
exposed, no valid address or key is refused, no value is altered on its way
to a pod, and no run's artifacts become unreadable.
"""

import dataclasses
import json
from urllib.parse import urlsplit

import pytest
import yaml
from scenario import ActionFailed, ActiveStatus

import world
from contracts import MINIO_APP_DATA


@pytest.fixture
def settled(ctx, tmp_path, pod_specs):
    return world.settled(ctx, tmp_path)


def configure(ctx, state, **options):
    """`juju config`, then the update-status that sees the rolled-out pod."""
    return world.active(ctx, ctx.on.config_changed(), dataclasses.replace(state, config={**state.config, **options}))


def server(spec):
    return next(c for c in spec["containers"] if c["name"] == "mlflow-server")


def flag(command, name):
    return command[command.index(name) + 1] if name in command else None


def minio_bag(**fields):
    """minio's app bag of CONTRACTS.md with some fields changed."""
    data = {**yaml.safe_load(MINIO_APP_DATA["data"]), **fields}
    return {**MINIO_APP_DATA, "data": yaml.safe_dump(data)}


def with_minio(tmp_path, **fields):
    return world.state(tmp_path, object_storage={"remote_app_data": minio_bag(**fields)})


# --- 3. turning the NodePort off closes it ------------------------------------


class Cluster:
    """What Juju 2.9 leaves in the namespace: every service a spec ever declared,
    as last declared; a service a spec stops declaring is never deleted."""

    def __init__(self):
        self.services = {}

    def apply(self, spec):
        for service in (spec.get("kubernetesResources") or {}).get("services", []):
            self.services[service["name"]] = service["spec"]

    def node_ports(self):
        return {
            name: [p.get("nodePort") for p in spec["ports"]]
            for name, spec in self.services.items()
            if spec.get("type") == "NodePort" or any("nodePort" in p for p in spec["ports"])
        }


def test_nodeport_on_off_on(ctx, settled, pod_specs):
    cluster = Cluster()
    on = configure(ctx, settled, enable_mlflow_nodeport=True, mlflow_nodeport=31390)
    cluster.apply(pod_specs[-1])
    assert cluster.node_ports() == {"mlflow-server-nodeport": [31390]}

    off = configure(ctx, on, enable_mlflow_nodeport=False)
    cluster.apply(pod_specs[-1])
    assert off.unit_status == ActiveStatus()
    assert cluster.node_ports() == {}  # no node exposes MLflow any more
    assert cluster.services["mlflow-server-nodeport"]["type"] == "ClusterIP"

    again = configure(ctx, off, enable_mlflow_nodeport=True)
    cluster.apply(pod_specs[-1])
    assert again.unit_status == ActiveStatus()
    assert cluster.node_ports() == {"mlflow-server-nodeport": [31390]}


def test_a_nodeport_left_by_an_older_charm_is_closed_without_ever_enabling_it(ctx, settled, pod_specs):
    cluster = Cluster()
    cluster.services["mlflow-server-nodeport"] = {"type": "NodePort", "ports": [{"port": 5000, "nodePort": 31380}]}
    cluster.apply(pod_specs[-1])
    assert cluster.node_ports() == {}


# --- 4. minio with namespace null names any host -------------------------------


def test_minio_without_namespace_at_an_ip_address(ctx, tmp_path, s3, pod_specs):
    port = urlsplit(s3).port  # the S3 fake, on 127.0.0.1
    out = world.active(
        ctx, ctx.on.config_changed(), with_minio(tmp_path, namespace=None, service="127.0.0.1", port=port)
    )
    assert out.unit_status == ActiveStatus()
    assert server(pod_specs[-1])["envConfig"]["MLFLOW_S3_ENDPOINT_URL"] == f"http://127.0.0.1:{port}"


def test_minio_without_namespace_at_a_dotted_host_name(ctx, tmp_path, pod_specs):
    # minio.kubeflow resolves to the S3 fake in tests, like minio.example.com would in a cluster.
    out = world.active(ctx, ctx.on.config_changed(), with_minio(tmp_path, namespace=None, service="minio.kubeflow"))
    assert out.unit_status == ActiveStatus()
    assert server(pod_specs[-1])["envConfig"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio.kubeflow:9000"


@pytest.mark.parametrize("service", ["::1", "[::1]"])
def test_minio_without_namespace_at_an_ipv6_address_is_bracketed(ctx, tmp_path, service):
    out = ctx.run(ctx.on.config_changed(), with_minio(tmp_path, namespace=None, service=service, port=1))
    # Nothing serves S3 on [::1]:1: the charm got as far as asking it.
    assert out.unit_status.name == "waiting"
    assert "cannot reach MinIO at http://[::1]:1 " in out.unit_status.message


@pytest.mark.parametrize(
    "namespace, service",
    [("kubeflow", "127.0.0.1"), ("kubeflow", "minio.example.com"), (None, "minio..example"), (None, "[minio]"),
     (None, "1.2"), (None, "fe80::1%eth0"), (None, "[127.0.0.1]"), (None, "mínio"), (None, "minio:9000")],
)  # fmt: skip
def test_minio_service_that_is_no_host_is_blocked(ctx, tmp_path, namespace, service):
    out = ctx.run(ctx.on.config_changed(), with_minio(tmp_path, namespace=namespace, service=service))
    assert out.unit_status.name == "blocked"
    assert "invalid object-storage service" in out.unit_status.message


# --- 5. values holding $ reach pods unchanged ----------------------------------

DOLLAR_ACCESS_KEY = "pa$$w0rd$(HOME)x"
DOLLAR_SECRET_KEY = "s3$(AWS_ACCESS_KEY_ID)$cr$$t"  # noqa: S105 - a test key


def test_minio_keys_with_dollars_are_escaped_in_the_pod_defaults(ctx, tmp_path):
    state = with_minio(tmp_path, **{"access-key": DOLLAR_ACCESS_KEY, "secret-key": DOLLAR_SECRET_KEY})
    out = ctx.run(ctx.on.config_changed(), state)
    env = json.loads(world.bag(out, "pod-defaults")["pod-defaults"])["minio"]["env"]
    # Kubernetes turns $$ into $ in plain env (and expands $(VAR)): what it delivers is the key.
    assert env["AWS_ACCESS_KEY_ID"] == "pa$$$$w0rd$$(HOME)x"
    assert env["AWS_SECRET_ACCESS_KEY"] == "s3$$(AWS_ACCESS_KEY_ID)$$cr$$$$t"


# --- 7. a key that cannot be sent is not "cannot reach MinIO" ------------------


@pytest.mark.parametrize(
    "field, key",
    [("access-key", "min\nio"), ("access-key", "mini€"), ("access-key", "mi\r\nX-Evil: 1"), ("secret-key", "k\0ey")],
)
def test_a_key_that_cannot_be_sent_blocks_naming_the_field(ctx, tmp_path, field, key):
    out = ctx.run(ctx.on.config_changed(), with_minio(tmp_path, **{field: key}))
    assert out.unit_status.name == "blocked"
    assert f"unusable {field}" in out.unit_status.message
    assert f"minio's {field}" in out.unit_status.message
    assert key.strip() not in out.unit_status.message and "cannot reach" not in out.unit_status.message


def test_a_key_that_cannot_be_sent_keeps_what_was_published(ctx, settled, pod_specs):
    published = world.bag(settled, "pod-defaults")["pod-defaults"]
    broken = world.update_relation(settled, "object-storage", remote_app_data=minio_bag(**{"access-key": "mini€"}))
    out = ctx.run(ctx.on.relation_changed(broken.get_relation(world.RELATION_IDS["object-storage"])), broken)
    assert out.unit_status.name == "blocked"
    assert world.bag(out, "pod-defaults")["pod-defaults"] == published
    assert len(pod_specs) == 1


# --- 9. no config change strands artifacts --------------------------------------


def test_serve_artifacts_off_keeps_proxying_what_was_logged_through_the_server(ctx, settled, pod_specs):
    serving = configure(ctx, settled, serve_artifacts=True)
    off = configure(ctx, serving, serve_artifacts=False)
    assert off.unit_status == ActiveStatus()
    command = server(pod_specs[-1])["command"]
    assert "--serve-artifacts" in command
    assert flag(command, "--artifacts-destination") == "s3://mlflow/"  # mlflow-artifacts:/ runs
    assert flag(command, "--default-artifact-root") == "s3://mlflow/"  # new experiments, direct to S3


def test_a_never_proxied_deployment_is_unchanged(ctx, settled, pod_specs):
    command = server(pod_specs[-1])["command"]
    assert "--serve-artifacts" not in command and "--artifacts-destination" not in command
    moved = configure(ctx, settled, default_artifact_root="models")
    assert moved.unit_status == ActiveStatus()
    assert flag(server(pod_specs[-1])["command"], "--default-artifact-root") == "s3://models/"


def test_a_bucket_change_while_proxying_is_refused_and_changes_nothing(ctx, settled, pod_specs, s3_buckets):
    serving = configure(ctx, settled, serve_artifacts=True)
    specs = len(pod_specs)
    moved = configure(ctx, serving, default_artifact_root="models")
    assert moved.unit_status.name == "blocked"
    message = moved.unit_status.message
    assert "default_artifact_root" in message and "'mlflow'" in message and "confirm-artifacts-copied" in message
    assert len(pod_specs) == specs  # the server in force keeps serving every run
    assert "models" not in {b["Name"] for b in s3_buckets.list_buckets()["Buckets"]}

    back = configure(ctx, moved, default_artifact_root="mlflow")
    assert back.unit_status == ActiveStatus()
    assert len(pod_specs) == specs


def test_the_operator_confirms_the_copy_and_the_proxy_moves(ctx, settled, pod_specs):
    serving = configure(ctx, settled, serve_artifacts=True)
    moved = configure(ctx, serving, default_artifact_root="models")
    confirmed = ctx.run(ctx.on.action("confirm-artifacts-copied"), moved)
    assert ctx.action_results == {"previous-bucket": "mlflow", "bucket": "models"}
    assert flag(server(pod_specs[-1])["command"], "--artifacts-destination") == "s3://models/"
    assert world.rolled_out(ctx, confirmed).unit_status == ActiveStatus()


def test_a_bucket_change_after_proxying_stopped_keeps_the_old_proxy(ctx, settled, pod_specs):
    serving = configure(ctx, settled, serve_artifacts=True)
    off = configure(ctx, serving, serve_artifacts=False, default_artifact_root="models")
    assert off.unit_status == ActiveStatus()
    command = server(pod_specs[-1])["command"]
    assert flag(command, "--artifacts-destination") == "s3://mlflow/"
    assert flag(command, "--default-artifact-root") == "s3://models/"
    # Serving again from another bucket than the proxied one is the refused case.
    assert configure(ctx, off, serve_artifacts=True).unit_status.name == "blocked"


def test_confirming_with_nothing_proxied_fails(ctx, settled):
    with pytest.raises(ActionFailed, match="nothing to confirm"):
        ctx.run(ctx.on.action("confirm-artifacts-copied"), settled)
