"""Fixtures for the pipeline tests: the real schemas from `schemas/`, compiled once."""

from __future__ import annotations

from pathlib import Path

import pytest

from koppelpunt.pipeline.parse import SchemaRegistry

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"


@pytest.fixture(scope="session")
def schemas() -> SchemaRegistry:
    return SchemaRegistry.load(SCHEMAS_DIR)
