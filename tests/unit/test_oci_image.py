"""What the oci-image resource tells the charm."""

import pytest

import oci_image


@pytest.mark.parametrize(
    "image, version",
    [
        ("docker.io/charmedkubeflow/mlflow:2.22.0-5be7a7a", (2, 22)),
        ("registry.local:5000/mlflow:3.17.2", (3, 17)),
        ("mlflow:v3.18", (3, 18)),
        ("registry.local:5000/mlflow", None),
        ("mlflow:latest", None),
        ("mlflow@sha256:abcd", None),
        ("mlflow:317", None),
    ],
)
def test_the_images_tag_tells_mlflows_version_where_it_names_one(image, version):
    assert oci_image.image_mlflow_version(image) == version
