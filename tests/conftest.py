import sys
from pathlib import Path

# tests/contracts.py and tests/fakes are shared by every layer.
sys.path.insert(0, str(Path(__file__).resolve().parent))
