"""Lay the charm out the way `charmcraft pack` does, under .cache/bench/.

    dispatch                 the script charmcraft generates (below)
    metadata.yaml config.yaml actions.yaml
    src/ templates/          copied fresh on every bench run
    venv/                    requirements.txt, `pip install --no-deps --target`
                             (charmcraft.yaml: charm-strict-dependencies);
                             rebuilt only when requirements.txt or the Python changes

The venv is the "installed size" the README quotes: its size is measured
right after pip made it into an empty folder.
"""

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "bench"

# What charmcraft writes as `dispatch` for an ops charm whose entry point is
# src/charm.py (charmcraft's dispatch template, unchanged).
DISPATCH = """#!/bin/sh

JUJU_DISPATCH_PATH="${JUJU_DISPATCH_PATH:-$0}" PYTHONPATH=lib:venv \\
  exec ./src/charm.py
"""
CHARM_FILES = ("metadata.yaml", "config.yaml", "actions.yaml")
CHARM_DIRS = ("src", "templates", "lib")


def find_python(requested: str = "") -> Path:
    """The interpreter the charm runs on: Python 3.8 (the operator pod's) when this machine has one."""
    candidates: List[str] = [requested] if requested else []
    if not requested:
        candidates += [os.environ.get("BENCH_PYTHON", ""), "python3.8"]
        candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.8*/bin/python3.8"))
        candidates += [sys.executable]
    for candidate in filter(None, candidates):
        exe = shutil.which(candidate) or candidate
        try:
            # Resolve shims (pyenv) to the real binary: a shim costs a process per hook.
            out = subprocess.run(
                [exe, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
        if requested:
            raise SystemExit(f"bench: --python {requested} does not run: {out.stderr.strip()[:200]}")
    raise SystemExit("bench: no Python interpreter found")


def python_version(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _tree_size(path: Path) -> Dict:
    files = 0
    total = 0
    bytecode = 0
    per_top: Dict[str, int] = {}
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            size = p.stat().st_size
            files += 1
            total += size
            if p.parent.name == "__pycache__":
                bytecode += size
            top = p.relative_to(path).parts[0]
            top = top.split("-")[0] if top.endswith((".dist-info", ".data")) else top
            per_top[top] = per_top.get(top, 0) + size
    biggest = sorted(per_top.items(), key=lambda kv: -kv[1])[:6]
    return {"bytes": total, "files": files, "bytecode": bytecode, "biggest": biggest}


def build_venv(python: Path, version: str) -> Path:
    """venv/ for the charm: requirements.txt into an empty folder, reused while unchanged."""
    requirements = (ROOT / "requirements.txt").read_bytes()
    key = hashlib.sha256(requirements + f"{version} {platform.machine()} no-deps".encode()).hexdigest()[:12]
    venv = CACHE / f"venv-{key}"
    meta = venv.with_suffix(".json")
    if venv.is_dir() and meta.is_file():
        return venv
    for stale in CACHE.glob("venv-*"):  # earlier requirements.txt
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink()
    venv.mkdir(parents=True)
    print(f"bench: installing requirements.txt for Python {version} into {venv.relative_to(ROOT)} ...", flush=True)
    out = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "--only-binary=:all:",
            "--no-deps",  # requirements.txt is the whole closure (charmcraft's charm-strict-dependencies)
            "--target",
            str(venv),
            "-r",
            str(ROOT / "requirements.txt"),
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        raise SystemExit(f"bench: pip could not install requirements.txt for Python {version}:\n{out.stderr[-4000:]}")
    size = _tree_size(venv)
    size.update(python=version, machine=platform.machine())
    meta.write_text(json.dumps(size))
    return venv


def venv_size(venv: Path) -> Dict:
    meta = json.loads(venv.with_suffix(".json").read_text())
    if "bytecode" not in meta:  # written by an older bench
        meta.update(_tree_size(venv))
        venv.with_suffix(".json").write_text(json.dumps(meta))
    return meta


def build_charm(venv: Path) -> Path:
    """A fresh charm directory in charmcraft's layout, with venv/ from the cache."""
    charm = CACHE / "charm"
    if charm.exists():
        shutil.rmtree(charm)
    charm.mkdir(parents=True)
    (charm / "dispatch").write_text(DISPATCH)
    (charm / "dispatch").chmod(0o755)
    for name in CHARM_FILES:
        shutil.copy2(ROOT / name, charm / name)
    for name in CHARM_DIRS:
        if (ROOT / name).is_dir():
            # copy2 keeps the file modes git checked out: a non-executable
            # src/charm.py fails here as it would in Juju.
            shutil.copytree(ROOT / name, charm / name, ignore=shutil.ignore_patterns("__pycache__"))
    (charm / "venv").symlink_to(venv)
    return charm


def make_interpreter(base: Path, version: str) -> Path:
    """The operator pod's `python3`, stood in for by a bare venv of `base`.

    A venv without system site-packages: the charm sees only the standard
    library and what PYTHONPATH (lib:venv) adds, as in the pod, and none of
    the .pth files this machine's own site-packages may carry. Its
    site-packages holds only bench/sitecustomize.py. Returns its bin/.
    """
    env_dir = CACHE / f"python-{version}"
    python = env_dir / "bin" / "python3"
    if not python.exists():
        shutil.rmtree(env_dir, ignore_errors=True)
        subprocess.run([str(base), "-m", "venv", "--without-pip", str(env_dir)], check=True)
    site_packages = next(env_dir.glob("lib/python*/site-packages"))
    shutil.copy2(Path(__file__).parent / "sitecustomize.py", site_packages / "sitecustomize.py")
    return python.parent
