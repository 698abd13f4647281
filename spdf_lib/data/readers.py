"""Reading the data files through Hugging Face ``datasets``, with errors that name the file and row.

JSON Lines (``.xz`` too) and CSV files are read with ``datasets.load_dataset`` into the project
cache; when the Arrow reader fails, the file is scanned again to say which line or data row is at
fault (:func:`load_jsonl`, :func:`load_csv`). :func:`read_jsonl_head` reads only the first lines of
a corpus file for the small profiles. Nothing touches the network: importing this module makes any
hidden call to the Hugging Face Hub fail at once.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import lzma
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .. import store
from .files import data_path

if TYPE_CHECKING:  # pragma: no cover
    import datasets

# The data is local: make any hidden call to the Hub fail fast instead of waiting for a timeout.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def import_datasets():
    """Import ``datasets`` without the warning ``tqdm.auto`` prints in a notebook without ipywidgets
    (noise in every chapter; the progress bars are switched off anyway, see ``_quiet_datasets``)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import datasets
    return datasets


def _hf_cache_dir() -> str:
    """The ``datasets`` Arrow cache lives in the project cache (follows ``SPDF_CACHE``)."""
    path = store.cache_root() / "hf_datasets"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


@contextlib.contextmanager
def _quiet_datasets():
    """Silence the per-file progress bars of ``datasets`` (noise in the book), then restore them."""
    datasets = import_datasets()

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def column(dataset, name: str) -> list:
    """A column as a plain list (fast: one Arrow conversion, not a Python loop over rows)."""
    if isinstance(dataset, dict):
        return list(dataset[name])
    if name not in dataset.column_names:
        raise ValueError(f"no column {name!r}; found {dataset.column_names}")
    return dataset.select_columns([name])[:][name]


def _open_text(path: Path):
    return lzma.open(path, "rt", encoding="utf-8") if path.suffix == ".xz" else open(path, encoding="utf-8")


def _locate_jsonl_error(path: Path) -> str:
    """Scan a JSON Lines file and describe its first bad line (the Arrow reader does not say)."""
    try:
        with _open_text(path) as handle:
            number = 0
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    return f"line {number}: empty line"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    return f"line {number}: not valid JSON ({err.msg} at column {err.colno})"
                if not isinstance(obj, dict):
                    return f"line {number}: expected a JSON object, got {type(obj).__name__}"
    except (OSError, EOFError, UnicodeDecodeError, lzma.LZMAError) as err:
        return f"unreadable ({type(err).__name__}: {err})"
    return "the file is empty (no documents)" if number == 0 else ""


def load_jsonl(relative: str, columns: tuple[str, ...]) -> "datasets.Dataset":
    """A JSON Lines file (``.xz`` too) as a Dataset with the required ``columns`` of strings."""
    datasets = import_datasets()

    path = data_path(relative)
    try:
        with _quiet_datasets():
            ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=_hf_cache_dir())
    except Exception as err:  # the Arrow reader's message names neither file nor line
        where = _locate_jsonl_error(path) or str(err.__cause__ or err)
        raise ValueError(f"{path}: malformed JSON Lines file: {where}") from err
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise ValueError(f"{path}: missing field(s) {missing}; found {ds.column_names}")
    return ds


def read_jsonl_head(relative: str, n: int, columns: tuple[str, ...]) -> "datasets.Dataset":
    """The first ``n`` lines of a JSON Lines file as a Dataset (the small profiles need a few
    documents; converting the whole file to Arrow first would take longer than using them)."""
    datasets = import_datasets()

    path = data_path(relative)
    rows = []
    try:
        with _open_text(path) as handle:
            for number, line in enumerate(itertools.islice(handle, n), start=1):
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}: line {number}: not valid JSON ({err.msg} at column {err.colno})") from err
                if not isinstance(row, dict) or any(not isinstance(row.get(c), str) for c in columns):
                    raise ValueError(f"{path}: line {number}: expected a JSON object with string fields "
                                     f"{list(columns)}")
                rows.append({c: row[c] for c in columns})
    except (OSError, EOFError, UnicodeDecodeError, lzma.LZMAError) as err:
        raise ValueError(f"{path}: unreadable after {len(rows)} lines ({type(err).__name__}: {err})") from err
    return datasets.Dataset.from_list(rows) if rows else datasets.Dataset.from_dict({c: [] for c in columns})


def check_strings(path: Path, name: str, values: list, unit: str = "line") -> None:
    """A ValueError naming the file, the line (or data row) and the field of the first empty value."""
    for number, value in enumerate(values, start=1):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{path}: {unit} {number}: field {name!r} is empty or not a string ({value!r})")


def _locate_csv_error(path: Path, columns: tuple[str, ...]) -> str:
    import csv

    number = 0
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or [h.strip().lower() for h in header] != [c.lower() for c in columns]:
                return f"header {header} instead of {list(columns)}"
            for number, row in enumerate(reader, start=1):
                if len(row) != len(columns):
                    return f"data row {number} (line {reader.line_num}): {len(row)} fields instead of {len(columns)}"
    except UnicodeDecodeError as err:
        return f"not UTF-8 text after data row {number} ({err.reason})"
    return "no data rows" if number == 0 else ""


def load_csv(relative: str, columns: tuple[str, ...]) -> tuple[Path, dict[str, list[str]]]:
    """A CSV file with exactly ``columns`` (all strings, none empty) as column lists."""
    datasets = import_datasets()

    path = data_path(relative)
    features = datasets.Features({c: datasets.Value("string") for c in columns})
    try:
        with _quiet_datasets():
            # No NA parsing: a reference reading "NA" or "null" is text, not a missing value.
            ds = datasets.load_dataset("csv", data_files=str(path), split="train", cache_dir=_hf_cache_dir(),
                                       features=features, keep_default_na=False, na_filter=False)
    except Exception as err:
        where = _locate_csv_error(path, columns)
        cause = err.__cause__ or err
        if where is None and isinstance(cause, OSError) and getattr(cause, "filename", None) != str(path):
            # the CSV is fine; the datasets cache it writes to is not (read-only, full disk ...)
            raise OSError(cause.errno, f"cannot write the datasets cache while reading {path}: "
                                       f"{cause.strerror or cause}", cause.filename) from err
        raise ValueError(f"{path}: malformed CSV: {where or cause}") from err
    out = {c: column(ds, c) for c in columns}
    for c in columns:
        check_strings(path, c, out[c], unit="data row")
    return path, out



__all__ = ["import_datasets", "column", "load_jsonl", "read_jsonl_head", "load_csv", "check_strings"]
