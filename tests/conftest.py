"""Shared fixtures: a tiny random CLIP checkpoint, temporary warehouses, generated media."""

from __future__ import annotations

from pathlib import Path

import pytest

from media_assets.demo.random_clip import write_random_clip
from media_assets.warehouse import Warehouse


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    """A CLIP-architecture checkpoint with random weights, saved with save_pretrained."""
    return write_random_clip(tmp_path_factory.mktemp("models") / "tiny-clip", size="tiny")


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory, tiny_clip):
    """`media-assets demo` with the tiny random CLIP, built once per session: (root, the command's output).
    Shared by test_cli and test_docs: read it, don't change it (copy the folder to write)."""
    from click.testing import CliRunner

    from media_assets.apps.cli import main

    root = tmp_path_factory.mktemp("cli") / "warehouse"
    result = CliRunner().invoke(
        main, ["demo", "--warehouse", str(root), "--clip-model", str(tiny_clip)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return root, result.output


@pytest.fixture
def warehouse(tmp_path, monkeypatch, tiny_clip) -> Warehouse:
    """An empty warehouse in a temp folder; the environment points every process at it."""
    root = tmp_path / "warehouse"
    monkeypatch.setenv("MEDIA_ASSETS_WAREHOUSE", str(root))
    monkeypatch.setenv("MEDIA_ASSETS_CLIP_MODEL", str(tiny_clip))
    monkeypatch.delenv("MEDIA_ASSETS_MEDIA_ROOT", raising=False)
    monkeypatch.delenv("MEDIA_ASSETS_VECTORS_URI", raising=False)
    return Warehouse.at(root).ensure()
