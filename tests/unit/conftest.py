from pathlib import Path

import pytest


@pytest.fixture
def charm_root() -> Path:
    return Path(__file__).resolve().parents[2]
