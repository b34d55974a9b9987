"""The oci-image resource: where Juju tells the charm which image to run."""

import re
from typing import TYPE_CHECKING, Dict, Optional, Tuple

import yaml

import yaml_text
from problems import Blocked

if TYPE_CHECKING:
    from ops.model import Resources

RESOURCE = "oci-image"


def read_image_details(resources: "Resources") -> Dict[str, str]:
    """The pod spec's imageDetails, from the resource file Juju hands out."""
    from ops.model import ModelError

    try:
        path = resources.fetch(RESOURCE)
        details = yaml_text.safe_load(path.read_text())
        image = {"imagePath": details["registrypath"]}
    except (ModelError, NameError, OSError, ValueError, yaml.YAMLError, TypeError, KeyError):
        raise Blocked(f"missing or unreadable {RESOURCE} resource: run `juju attach-resource <app> {RESOURCE}=<image>`")
    if not isinstance(image["imagePath"], str) or not image["imagePath"]:
        raise Blocked(f"the {RESOURCE} resource names no image: run `juju attach-resource <app> {RESOURCE}=<image>`")
    for key in ("username", "password"):
        if details.get(key):
            image[key] = str(details[key])
    return image


_TAG_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:[.\-_+]|$)")


def image_mlflow_version(image_path: str) -> Optional[Tuple[int, int]]:
    """MLflow's major.minor as the image's tag says it (`mlflow:2.22.0-5be7a7a`),
    or None when the tag says nothing (a digest, `latest`, a custom name)."""
    name = image_path.split("@", 1)[0].rsplit("/", 1)[-1]
    if ":" not in name:
        return None
    match = _TAG_VERSION.match(name.split(":", 1)[1])
    return (int(match.group(1)), int(match.group(2))) if match else None
