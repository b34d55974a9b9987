"""bundle.yaml: a Juju 2.9 Kubernetes bundle whose relations fit metadata.yaml.

Juju checks the same things when it reads a bundle (every related application
is declared in it, endpoints exist and share an interface), but only on a
controller; these tests check them here.
"""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = yaml.safe_load((ROOT / "bundle.yaml").read_text())
METADATA = yaml.safe_load((ROOT / "metadata.yaml").read_text())
APP = METADATA["name"]

# The peers' side of each relation (their charms' metadata.yaml): endpoint -> interface.
PEER_ENDPOINTS = {
    ("charmed-osm-mariadb-k8s", "mysql"): "mysql",
    ("minio", "object-storage"): "object-storage",
    ("istio-pilot", "ingress"): "ingress",
    ("admission-webhook", "pod-defaults"): "pod-defaults",
}


def _endpoint(text):
    app, _, endpoint = text.partition(":")
    assert endpoint, f"relation end {text!r} must name its endpoint"
    return app, endpoint


def test_is_a_kubernetes_bundle_of_the_tutorial_applications():
    applications = BUNDLE["applications"]
    assert BUNDLE["bundle"] == "kubernetes"
    assert applications[APP]["charm"] == "mlflow-server"
    assert applications["mlflow-db"]["charm"] == "charmed-osm-mariadb-k8s"
    for name, spec in applications.items():
        assert spec.get("channel"), f"{name} needs a channel"
        assert spec.get("scale") == 1


def test_mlflow_image_is_the_one_metadata_names():
    upstream = METADATA["resources"]["oci-image"]["upstream-source"]
    assert BUNDLE["applications"][APP]["resources"] == {"oci-image": upstream}


def test_every_relation_joins_an_endpoint_of_ours_to_a_peer_endpoint_of_the_same_interface():
    applications = BUNDLE["applications"]
    requires = METADATA["requires"]
    related = []
    for pair in BUNDLE["relations"]:
        assert len(pair) == 2
        ends = [_endpoint(end) for end in pair]
        for app, _ in ends:
            assert app in applications, f"{app} is related but not declared: Juju refuses the bundle"
        ours = [end for end in ends if end[0] == APP]
        theirs = [end for end in ends if end[0] != APP]
        assert len(ours) == 1 and len(theirs) == 1, f"{pair} must relate {APP} to another application"
        endpoint = ours[0][1]
        peer_app, peer_endpoint = theirs[0]
        assert endpoint in requires, f"{endpoint} is not an endpoint of {APP}"
        peer_interface = PEER_ENDPOINTS[(applications[peer_app]["charm"], peer_endpoint)]
        assert requires[endpoint]["interface"] == peer_interface
        related.append(endpoint)
    assert sorted(related) == sorted(requires), "each endpoint of the charm is related exactly once"
