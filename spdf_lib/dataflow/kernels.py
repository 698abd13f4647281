"""The measured side of chapter 07: reading the tables of timed sparse kernels.

``scripts/measure_sparse_kernels.py`` times dense, unstructured-sparse (CSR) and 2:4 semi-structured
matmuls at GPT-3 XL layer shapes and writes one CSV per device under ``tables/kernels/``.
:func:`load_kernel_measurements` reads them all (a file without the expected columns is an error
naming it), and :func:`measured_block_speedups` adds the four layers of a block up into whole-block
speed-ups over the fastest dense kernel.
"""

from __future__ import annotations

from pathlib import Path

from ..store import REPO_ROOT


def kernel_tables_dir(tables_root: Path | str) -> Path:
    """Where measured kernel CSVs are read from: ``<tables_root>/kernels`` if it holds any CSV,
    else the repository's committed ``tables/kernels`` (chapter 07 run with a scratch tables dir)."""
    own = Path(tables_root) / "kernels"
    if own.is_dir() and any(own.glob("*.csv")):
        return own
    return REPO_ROOT / "tables" / "kernels"


def load_kernel_measurements(tables_root: Path | str):
    """All measured kernel CSVs as one DataFrame with a ``source_file`` column (chapter 07).

    Reads ``*.csv`` under :func:`kernel_tables_dir`. Returns an empty frame when there is none; a file
    without the expected columns raises a ValueError naming it.
    """
    import pandas as pd

    folder = kernel_tables_dir(tables_root)
    frames = []
    needed = {"device", "device_name", "torch", "layer", "tokens", "kernel", "dtype", "sparsity", "median_ms",
              "speedup_vs_dense", "status"}
    for path in sorted(folder.glob("*.csv")):
        df = pd.read_csv(path)
        missing = needed - set(df.columns)
        if missing:
            raise ValueError(f"{path} is not a kernel measurement table: missing columns {sorted(missing)}")
        frames.append(df.assign(source_file=path.name))
    if not frames:
        return pd.DataFrame(columns=[*sorted(needed), "source_file"])
    return pd.concat(frames, ignore_index=True)


def measured_block_speedups(measurements):
    """Whole-block speed-ups of the measured sparse kernels over the fastest dense kernel (chapter 07).

    For every device, kernel (``csr``, ``2:4``) and sparsity: the four GPT-3 XL linears' best times
    are added up (the fastest dtype and call variant of each layer) and compared with the sum of the
    fastest dense times of the same layers. A (device, kernel, sparsity) that did not run on every
    layer is left out. Returns a DataFrame with device, device_name, torch, tokens, kernel, sparsity,
    dense_ms, sparse_ms and speedup.
    """
    import pandas as pd

    columns = ["device", "device_name", "torch", "tokens", "kernel", "sparsity", "dense_ms", "sparse_ms", "speedup"]
    if measurements is None or len(measurements) == 0:
        return pd.DataFrame(columns=columns)
    ok = measurements[measurements["status"] == "ok"].copy()
    ok["median_ms"] = ok["median_ms"].astype(float)
    keys = ["device", "device_name", "torch", "tokens"]
    rows = []
    for group_key, g in ok.groupby(keys, sort=True):
        dense = g[g["kernel"] == "dense"].groupby("layer")["median_ms"].min()
        for (kernel, sparsity), s in g[g["kernel"] != "dense"].groupby(["kernel", "sparsity"], sort=True):
            best = s.groupby("layer")["median_ms"].min()
            if set(best.index) != set(dense.index) or len(dense) == 0:
                continue  # a layer failed or was not measured: no honest block total
            rows.append({**dict(zip(keys, group_key)), "kernel": kernel, "sparsity": float(sparsity),
                         "dense_ms": float(dense.sum()), "sparse_ms": float(best.sum()),
                         "speedup": float(dense.sum() / best.sum())})
    return pd.DataFrame(rows, columns=columns)


__all__ = ["kernel_tables_dir", "load_kernel_measurements", "measured_block_speedups"]
