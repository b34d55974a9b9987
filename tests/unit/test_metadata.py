"""metadata.yaml's links: what Charmhub shows as this charm's docs, source,
issue tracker and maintainers must be this charm's own, or absent."""

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
METADATA = yaml.safe_load((ROOT / "metadata.yaml").read_text())
LINK_FIELDS = ("docs", "source", "issues", "website")


def link_problems(metadata: dict):
    """Why the metadata's links cannot be trusted to be this charm's own."""
    name, problems, repositories = metadata["name"], [], set()
    for field in LINK_FIELDS:
        for url in [metadata[field]] if isinstance(metadata.get(field), str) else metadata.get(field) or []:
            parsed = urlparse(url)
            if parsed.scheme != "https" or not parsed.netloc:
                problems.append(f"{field}: {url} is not an https URL")
                continue
            if parsed.netloc in ("github.com", "gitlab.com", "launchpad.net"):
                repository = "/".join(parsed.path.strip("/").split("/")[:2])
                repositories.add(repository)
                if not repository.split("/")[-1].startswith(name):
                    problems.append(f"{field}: {url} is the repository of another project, not {name}'s")
    if len(repositories) > 1:
        problems.append(f"the links name different repositories: {sorted(repositories)}")
    for maintainer in metadata.get("maintainers") or []:
        if not re.fullmatch(r"[^<>]+ <[^<>@\s]+@[^<>@\s]+>", maintainer):
            problems.append(f"maintainers: {maintainer!r} is not `Name <email>` of a person who maintains it")
    return problems


def test_metadata_links_are_this_charms_own_or_absent():
    assert link_problems(METADATA) == []


@pytest.mark.parametrize(
    "fields, problem",
    [
        ({"source": "https://github.com/canonical/mlflow-operator"}, "another project"),
        ({"issues": "http://github.com/someone/mlflow-server/issues"}, "not an https URL"),
        (
            {"source": "https://github.com/a/mlflow-server", "issues": "https://github.com/b/mlflow-server/issues"},
            "different repositories",
        ),
        ({"maintainers": ["mlflow-server charm developers"]}, "Name <email>"),
    ],
)
def test_the_link_check_catches(fields, problem):
    problems = link_problems({"name": "mlflow-server", **fields})
    assert len(problems) == 1 and problem in problems[0], problems


def test_the_link_check_accepts_the_charms_own_repository():
    own = {
        "name": "mlflow-server",
        "source": "https://github.com/someone/mlflow-server-operator",
        "issues": "https://github.com/someone/mlflow-server-operator/issues",
        "maintainers": ["A Person <a.person@example.org>"],
    }
    assert link_problems(own) == []
