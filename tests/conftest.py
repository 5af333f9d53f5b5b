"""Suite-wide settings: no hub access, no user config, fixtures read in place."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"


def fixture_path(relative: str) -> Path:
    """A file under ../shared/fixtures, or skip the test saying which one is missing."""
    path = FIXTURES / relative
    if not path.exists():
        pytest.skip(f"fixture {path} is not present (it lives in ../shared/fixtures beside the repo)")
    return path
