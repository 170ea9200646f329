"""Where the tests and the repository are, and the sample data the tests keep in tests/data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = TESTS_DIR.parent
DATA_DIR = TESTS_DIR / "data"
AWS_EVENTS_DIR = DATA_DIR / "aws-events"


def aws_event(name: str) -> dict[str, Any]:
    """A sample AWS event from tests/data/aws-events (see its README), e.g. `aws_event("s3-put.json")`."""
    data: dict[str, Any] = json.loads((AWS_EVENTS_DIR / name).read_text(encoding="utf-8"))
    return data
