"""Pin the whole closure of requirements.in for the operator pod's Python 3.8.

pip resolves the set as Python 3.8 would (binary wheels only); the wheel
file names give the exact versions, written sorted to requirements.txt.
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = "# Generated from requirements.in for Python 3.8 (the operator pod) by tox -e lock.\n# Do not edit by hand.\n"


def main() -> int:
    with tempfile.TemporaryDirectory() as dest:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--python-version",
                "3.8",
                "--only-binary=:all:",
                "--dest",
                dest,
                "-r",
                str(ROOT / "requirements.in"),
            ],
            check=True,
        )
        pins = set()
        for wheel in Path(dest).glob("*.whl"):
            name, version = wheel.name.split("-")[:2]
            pins.add(f"{re.sub(r'[-_.]+', '-', name).lower()}=={version}")
    (ROOT / "requirements.txt").write_text(HEADER + "".join(f"{pin}\n" for pin in sorted(pins)))
    print(f"requirements.txt: {len(pins)} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
