"""One virtualenv per MLflow version under .cache/, made on first use and reused.

The image's MLflow version is read from metadata.yaml's upstream-source tag
(`...mlflow:2.22.0-5be7a7a` -> 2.22.0), so bumping the image bumps the test.
Each venv also gets what the image carries beside MLflow (pymysql, boto3,
prometheus-flask-exporter) and what the tutorial's notebook uses
(scikit-learn), in one pinned install.

uv (pinned in requirements-test.txt) makes them, not pip: on a fresh clone
it installs a venv in about a third of pip's time, and it resolves the same
versions (checked for 3.17.2: the same 94 packages).

Run as a script to prepare every venv ahead of time, all at once (tox's e2e
environment does, before pytest): `python tests/e2e/mlflow_venvs.py`.
"""

import fcntl
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, List

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


def ensure_venv(version: str, log=print) -> Path:
    """The venv's bin/ directory, installing the venv unless a complete one is there."""
    wanted = "\n".join(requirements(version)) + "\n"
    return _venv(
        f"mlflow-{version}", Path(sys.executable), wanted, list(requirements(version)), f"MLflow {version}", log
    )


def _venv(name: str, python: Path, wanted: str, pip_args: List[str], what: str, log) -> Path:
    """`.cache/<name>`'s bin/, made with `python` and `uv pip install <pip_args>` unless complete.

    A marker written after the install succeeds holds `wanted` (the
    requirements, and whatever else must match), so a venv whose install was
    interrupted, or whose pins changed, is built again. A lock file keeps a
    test run, its xdist workers and `make demo` from building the same venv
    at once.
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    target = CACHE / name
    marker = target / "e2e-requirements.txt"
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text() == wanted:
            return target / "bin"
        log(f"installing {what} into {target.relative_to(ROOT)} with {python} (once; takes a few minutes)")
        started = time.monotonic()
        uv = _uv_binary()
        log_file = CACHE / f"{name}-install.log"
        # No --compile-bytecode (pip's way): it compiles all ~100 packages, tests and all, for
        # minutes of CPU; the first process to import a module writes its .pyc here instead.
        install = [uv, "pip", "install", "--python", str(target / "bin" / "python")]
        with open(log_file, "wb") as out:
            made = subprocess.run([uv, "venv", "--clear", "--python", str(python), str(target)], stdout=out, stderr=out)
            result = made if made.returncode else subprocess.run([*install, *pip_args], stdout=out, stderr=out)
        if result.returncode != 0:
            tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"uv could not install {what} (log: {log_file}):\n{tail}")
        marker.write_text(wanted)
        log(f"{what} installed in {time.monotonic() - started:.0f} s")
        return target / "bin"


# The multi-tenant image's closure (issue 24), hashed: the "workspaces" venv
# installs exactly this file, as image/rockcraft.yaml does.
IMAGE_LOCK = ROOT / "image" / "requirements.lock"
WORKSPACES_PYTHON = "3.12"


class NoPython(Exception):
    """No interpreter of the version the image runs: the reason says where we looked."""


def find_python(version: str = WORKSPACES_PYTHON) -> Path:
    """A `python3.12` from pyenv or PATH; never downloaded.

    pyenv first (`PYENV_VERSION=<v> pyenv which`, then ~/.pyenv/versions/<v>.*),
    then PATH, so a machine with pyenv gets the same interpreter every time.
    """
    name = f"python{version}"
    looked = []
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for candidate in sorted(pyenv_root.glob(f"versions/{version}.*/bin/{name}"), reverse=True):
        if os.access(candidate, os.X_OK):
            return candidate
    looked.append(f"{pyenv_root}/versions/{version}.*/bin/{name}")
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    looked.append(f"{name} on PATH")
    raise NoPython(
        f"no Python {version} (the multi-tenant image's interpreter) found; looked at "
        + ", ".join(looked)
        + f". Install one (`pyenv install {version}` or `apt-get install {name}`) to run the workspaces tests."
    )


def ensure_workspaces_venv(log=print) -> Path:
    """The bin/ of `.cache/mlflow-workspaces`, built from image/requirements.lock with --require-hashes.

    Raises NoPython when no Python 3.12 exists, for the caller to turn into a skip
    whose reason names what is missing.
    """
    python = find_python()
    pip_args = ["--require-hashes", "--no-deps", "-r", str(IMAGE_LOCK)]
    what = str(IMAGE_LOCK.relative_to(ROOT))
    return _venv("mlflow-workspaces", python, f"{python}\n{IMAGE_LOCK.read_text()}", pip_args, what, log)


_UV_LOCK = threading.Lock()


def _uv_binary() -> str:
    """The test envs' pinned uv. Found under a lock: uv's finder reads sysconfig,
    whose first read in a process is not thread-safe (ensure_all's threads saw
    its EXE as None), and imported here so this module imports without uv."""
    with _UV_LOCK:
        from uv import find_uv_bin

        return str(find_uv_bin())


def _workspaces_unless_no_python(log) -> None:
    try:
        ensure_workspaces_venv(log)
    except NoPython as missing:
        log(str(missing))


def ensure_all(log=print) -> None:
    """Every venv the e2e suite uses, built side by side (downloads and unpacking overlap), so
    no test waits for a venv nor builds one after another; each under its own lock."""
    builds: List[Callable[[], object]] = [lambda v=v: ensure_venv(v, log) for v in VERSIONS]
    builds.append(lambda: _workspaces_unless_no_python(log))
    with ThreadPoolExecutor(len(builds)) as pool:
        for done in [pool.submit(build) for build in builds]:
            done.result()  # an install that failed fails the script, naming its log


if __name__ == "__main__":
    ensure_all(lambda message: print(message, flush=True))
