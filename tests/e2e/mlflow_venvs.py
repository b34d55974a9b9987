"""One virtualenv per MLflow version under .cache/, made on first use and reused.

The image's MLflow version is read from metadata.yaml's upstream-source tag
(`...mlflow:2.22.0-5be7a7a` -> 2.22.0), so bumping the image bumps the test.
Each venv also gets what the image carries beside MLflow (pymysql, boto3,
prometheus-flask-exporter) and what the tutorial's notebook uses
(scikit-learn), in one pinned pip call.

Run as a script to prepare every venv ahead of time: `python tests/e2e/mlflow_venvs.py`.
"""

import fcntl
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"

# The newest MLflow 3.x with a matching mlflow-skinny on PyPI (3.18.0 has none).
NEWEST_MLFLOW = "3.17.2"

# Pinned beside MLflow in every venv: the image's extras and the notebook's library.
EXTRAS = (
    "pymysql==1.2.4",
    "boto3==1.44.8",
    "prometheus-flask-exporter==0.23.2",
    "scikit-learn==1.9.1",
)


def charm_image() -> str:
    """The image metadata.yaml names: the one pin of the image's MLflow."""
    metadata = yaml.safe_load((ROOT / "metadata.yaml").read_text())
    return metadata["resources"]["oci-image"]["upstream-source"]


def mlflow_version_of(image: str) -> str:
    """`docker.io/charmedkubeflow/mlflow:2.22.0-5be7a7a` -> `2.22.0`."""
    match = re.search(r":(\d+\.\d+\.\d+)(?:-[^:/]*)?$", image)
    if not match:
        raise ValueError(f"cannot read an MLflow version from the image tag of {image!r}")
    return match.group(1)


def image_mlflow_version() -> str:
    return mlflow_version_of(charm_image())


# What the e2e tests run each case on: the tutorial's image and the newest 3.x.
VERSIONS = [image_mlflow_version(), NEWEST_MLFLOW]


def image_of(version: str) -> str:
    """The image a deployment attaches for an MLflow version: the charm's own, or a same-named newer tag."""
    if version == image_mlflow_version():
        return charm_image()
    return f"{charm_image().rsplit(':', 1)[0]}:{version}"


# Pins of the image's era where today's releases break that MLflow:
# SQLAlchemy 2.1 dropped a pool class MLflow 2.x imports.
ERA_PINS = {"2": ("sqlalchemy==2.0.40",)}


def requirements(version: str):
    return (f"mlflow=={version}", *EXTRAS, *ERA_PINS.get(version.split(".")[0], ()))


def venv_dir(version: str) -> Path:
    return CACHE / f"mlflow-{version}"


def ensure_venv(version: str, log=print) -> Path:
    """The venv's bin/ directory, installing the venv unless a complete one is there.

    A marker written after pip succeeds holds the requirement list, so a venv
    whose install was interrupted, or whose pins changed, is built again. A
    lock file keeps a test run and `make demo` from building the same venv at once.
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"mlflow-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _ensure_venv(version, log)


def _ensure_venv(version: str, log) -> Path:
    target = venv_dir(version)
    marker = target / "e2e-requirements.txt"
    wanted = "\n".join(requirements(version)) + "\n"
    if marker.is_file() and marker.read_text() == wanted:
        return target / "bin"
    log(f"installing MLflow {version} into {target.relative_to(ROOT)} (once; takes a few minutes)")
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(target)], check=True)
    pip = [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    log_file = CACHE / f"mlflow-{version}-install.log"
    with open(log_file, "wb") as out:
        result = subprocess.run([*pip, *requirements(version)], stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"pip could not install MLflow {version} (log: {log_file}):\n{tail}")
    marker.write_text(wanted)
    log(f"MLflow {version} installed in {time.monotonic() - started:.0f} s")
    return target / "bin"


if __name__ == "__main__":
    for v in (image_mlflow_version(), NEWEST_MLFLOW):
        ensure_venv(v)
