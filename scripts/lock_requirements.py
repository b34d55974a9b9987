"""Pin the whole closure of requirements.in for the operator pod's Python 3.8.

Run with a Python 3.8 interpreter (tox -e lock does): pip evaluates
environment markers against the interpreter that runs it, even with
--python-version, and botocore asks for a different urllib3 below 3.10.
The downloaded wheels' file names give the exact versions.
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = "# Generated from requirements.in for Python 3.8 (the operator pod) by tox -e lock.\n# Do not edit by hand.\n"


def main() -> int:
    if sys.version_info[:2] != (3, 8):
        print(f"run this with Python 3.8, not {sys.version.split()[0]}: markers would resolve differently")
        return 2
    with tempfile.TemporaryDirectory() as dest:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", dest]
        subprocess.run([*command, "-r", str(ROOT / "requirements.in")], check=True)
        pins = set()
        for wheel in Path(dest).glob("*.whl"):
            name, version = wheel.name.split("-")[:2]
            pins.add(f"{re.sub(r'[-_.]+', '-', name).lower()}=={version}")
    (ROOT / "requirements.txt").write_text(HEADER + "".join(f"{pin}\n" for pin in sorted(pins)))
    print(f"requirements.txt: {len(pins)} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
