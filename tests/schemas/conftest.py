from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from schemas.history import SCHEMAS_DIR
from schemas.registry import LocalRegistry


@pytest.fixture(scope="session")
def registry() -> LocalRegistry:
    return LocalRegistry.load()


@pytest.fixture
def schema_tree(tmp_path: Path) -> Path:
    """A private copy of schemas/avro, schemas/history and schemas/ids.json."""
    root = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR / "avro", root / "avro")
    if (SCHEMAS_DIR / "history").is_dir():
        shutil.copytree(SCHEMAS_DIR / "history", root / "history")
    if (SCHEMAS_DIR / "ids.json").exists():
        shutil.copy(SCHEMAS_DIR / "ids.json", root / "ids.json")
    return root
