"""The reader of the measured kernel tables (spdf_lib.dataflow.kernels, chapter 07)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spdf_lib import dataflow as df
from spdf_lib.store import REPO_ROOT


def _write_kernel_csv(path: Path, device: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("device,device_name,torch,layer,tokens,kernel,dtype,sparsity,median_ms,speedup_vs_dense,status\n"
                    f"{device},X,2.0,mlp.c_fc,8,dense,float32,0.0,1.0,1.0,ok\n")


def test_load_kernel_measurements(tmp_path):
    _write_kernel_csv(tmp_path / "own" / "kernels" / "sparse_kernels_cpu.csv", "cpu")
    got = df.load_kernel_measurements(tmp_path / "own")
    assert list(got["device"]) == ["cpu"] and list(got["source_file"]) == ["sparse_kernels_cpu.csv"]
    # A tables dir without measurements falls back to the repository's committed tables/kernels.
    assert df.kernel_tables_dir(tmp_path / "empty") == REPO_ROOT / "tables" / "kernels"
    (tmp_path / "bad" / "kernels").mkdir(parents=True)
    (tmp_path / "bad" / "kernels" / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="x.csv"):
        df.load_kernel_measurements(tmp_path / "bad")


def test_measured_block_speedups():
    import pandas as pd

    rows = []
    for layer, dense_ms in (("a", 1.0), ("b", 3.0)):
        rows.append(dict(device="cpu", device_name="X", torch="2", tokens=8, layer=layer, kernel="dense",
                         dtype="float32", sparsity=0.0, median_ms=dense_ms, status="ok"))
        for dtype, factor in (("float32", 2.0), ("bfloat16", 4.0)):  # the faster dtype counts
            rows.append(dict(rows[-1], kernel="csr", dtype=dtype, sparsity=0.75, median_ms=dense_ms * factor))
    rows.append(dict(rows[0], kernel="2:4", sparsity=0.5, median_ms=0.5))  # layer b failed: left out
    rows.append(dict(rows[0], layer="b", kernel="2:4", sparsity=0.5, median_ms=None, status="unsupported: x"))
    got = df.measured_block_speedups(pd.DataFrame(rows))
    assert list(got["kernel"]) == ["csr"]
    assert got["speedup"].iloc[0] == pytest.approx(4.0 / 8.0)
    assert df.measured_block_speedups(pd.DataFrame()).empty
