"""The demo's outputs read with plain zarr/xarray equal rhoflow's readers (after `make demo`;
the workflow test checks the same on outputs it builds itself)."""

from __future__ import annotations

from pathlib import Path

import pytest
from plain_readers import check_plain_readers

RESULTS = Path(__file__).resolve().parents[1] / "results"


@pytest.mark.skipif(
    not (RESULTS / "render" / "demo-00000.zarr").exists(), reason="needs `make demo` outputs"
)
def test_demo_outputs_read_with_plain_zarr() -> None:
    check_plain_readers(RESULTS, "psi4", "demo-00000")
