"""The user's own data for ``gbfocal bench``: CSV / Parquet files, or ``X, y`` from Python.

:func:`read_table` reads a file into a feature frame and a target column;
:func:`from_xy` turns any ``X, y`` (arrays, a DataFrame and a Series) into a
:class:`gbfocal.datasets.Dataset` in the representation the bench trains on:

- numeric and boolean columns become float32 (missing values as NaN, which
  both engines route natively);
- string, object and categorical columns become pandas ``category`` columns,
  which XGBoost (``enable_categorical=True``) and LightGBM
  (``categorical_feature="auto"``) split on as categories. ``X`` is then a
  DataFrame; with no such column it is a float32 array, as for the shipped
  datasets;
- the target may have any label type. A binary target is coded 1 for the
  positive class, by default the rarer one (``positive`` overrides; a text
  label matches a class by its string form), 0 for the other. A target with
  K = 3 … :data:`MAX_CLASSES` classes is multiclass: coded ``0 … K-1`` in
  the sorted order of the classes (as the engines' ``classes_``).

Every problem (a missing column, a target with one class, too many classes
or missing values, a column type no engine takes, ``positive`` given for a
multiclass target) raises :class:`DataError` naming the fix, before anything
is trained.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MAX_CLASSES", "READERS", "DataError", "from_xy", "read_table", "subsample"]

#: File name endings :func:`read_table` reads, and the pandas reader for each.
READERS = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".csv.bz2": "csv",
    ".csv.zip": "csv",
    ".tsv": "tsv",
    ".tsv.gz": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
#: The most classes a target may have: the labels are int8 codes, and a benchmark of rare classes with more
#: is almost always a numeric column named as the target by mistake.
MAX_CLASSES = 100
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


class DataError(ValueError):
    """User data the bench cannot train on; the message names the problem and the fix."""


def read_table(path: str | Path, target: str) -> tuple[Any, Any]:
    """``(X, y)``: the columns of a CSV or Parquet file but ``target``, and the ``target`` column.

    Parameters
    ----------
    path : str or Path
        A file whose name ends in one of :data:`READERS` (``.csv``,
        ``.csv.gz``, ``.tsv``, ``.parquet``, …), read with pandas (Parquet
        needs pyarrow).
    target : str
        The name of the label column.

    Returns
    -------
    X : pandas.DataFrame, shape (n_rows, n_columns - 1)
    y : pandas.Series, shape (n_rows,)

    Raises
    ------
    DataError
        The file is missing or of an unknown kind, has no such column, or
        holds no feature column.
    """
    import pandas as pd

    path = Path(path)
    name = path.name.lower()
    kind = next((READERS[end] for end in sorted(READERS, key=len, reverse=True) if name.endswith(end)), None)
    if kind is None:
        raise DataError(f"cannot read {str(path)!r}: the file name must end in one of {', '.join(READERS)}")
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist (or is not a file)")
    try:
        if kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if kind == "tsv" else ",", low_memory=False)
    except ImportError as exc:
        raise DataError(f"reading {str(path)!r} needs {exc.name or 'pyarrow'}: pip install pyarrow") from exc
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read {str(path)!r} as {kind.upper()}: {exc}") from exc
    columns = [str(c) for c in frame.columns]
    if target not in columns:
        close = difflib.get_close_matches(target, columns, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        shown = ", ".join(repr(c) for c in columns[:20]) + (", …" if len(columns) > 20 else "")
        raise DataError(f"{str(path)!r} has no column {target!r}{hint} Its columns: {shown}. Choose one with --target")
    frame.columns = columns
    y = frame.pop(target)
    if frame.shape[1] == 0:
        raise DataError(f"{str(path)!r} has no column besides the target {target!r}: there is nothing to learn from")
    return frame, y


def from_xy(X: Any, y: Any, *, positive: Any = None, name: str = "data") -> Any:
    """A :class:`gbfocal.datasets.Dataset` from features ``X`` and labels ``y``, checked before any training.

    Parameters
    ----------
    X : array-like of shape (n_rows, n_features), or pandas.DataFrame
        Numeric arrays are used as float32; a DataFrame's string, object and
        ``category`` columns become categories, numeric and boolean ones
        float32, missing values NaN.
    y : array-like of shape (n_rows,), or pandas.Series
        Labels of any type, 2 to :data:`MAX_CLASSES` classes, none missing.
    positive : optional
        Binary targets only: the label of the positive class (coded 1).
        Matched against the classes by value, else by string form (so
        ``"1"`` selects the integer class 1 and ``"yes"`` the string
        ``"yes"``). Default: the rarer class (on a tie, the one whose string
        form sorts last).
    name : str
        The dataset's name in results and file names (letters, digits,
        ``_ . -``).

    Returns
    -------
    Dataset
        Binary: ``y`` coded 0/1 as int8, ``class_labels`` the original
        ``(negative, positive)`` labels. Multiclass: ``y`` coded
        ``0 … K-1`` as int8, ``class_labels`` the K labels in code order
        (sorted).

    Raises
    ------
    DataError
        For a target with one class, more than :data:`MAX_CLASSES`, or
        missing values; a ``positive`` that is not a class (the message
        lists the classes), or given for a multiclass target; shapes that
        disagree; a column type the engines cannot take.
    """
    import pandas as pd

    from gbfocal import datasets as gd

    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DataError(f"name must be letters, digits, '_', '.' or '-', got {name!r}")
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X) if not hasattr(X, "shape") else X)
    if frame.ndim != 2 or frame.shape[1] == 0:
        raise DataError(f"X must be 2-dimensional with at least one column, got shape {frame.shape}")
    labels = y if isinstance(y, pd.Series) else pd.Series(np.asarray(y))
    if labels.ndim != 1 and not (isinstance(y, np.ndarray) and y.ndim == 1):
        raise DataError(f"y must be 1-dimensional, got shape {np.shape(y)}")
    if len(labels) != len(frame):
        raise DataError(f"X has {len(frame):,} rows but y has {len(labels):,}; they must be the same rows")
    codes, class_labels = _target(labels, positive)
    X_out, names, categorical = _features(frame)
    return gd.Dataset(name, X_out, codes, names, categorical, class_labels=class_labels)


def _target(y: Any, positive: Any) -> tuple[np.ndarray, tuple[Any, ...]]:
    """``(codes, class_labels)`` of a target Series: binary (:func:`_binary_codes`) or multiclass (sorted codes)."""
    what = f"target {y.name!r}" if isinstance(y.name, str) else "y"
    missing = int(y.isna().sum())
    if missing:
        raise DataError(f"{what} has {missing:,} missing values; drop those rows (or fill them) first")
    counts = y.value_counts(sort=False)
    classes = [_plain(c) for c in counts.index]
    if len(classes) < 2:
        shown = repr(classes[0]) if classes else "no rows"
        raise DataError(f"{what} has one class ({shown}); a benchmark needs rows of two classes")
    if len(classes) == 2:
        return _binary_codes(y, counts, classes, positive, what)
    if len(classes) > MAX_CLASSES:
        raise DataError(
            f"{what} has {len(classes):,} classes, more than the {MAX_CLASSES} a benchmark takes; is it a numeric "
            "column rather than a label? Choose the label column with --target, or bin the values into classes"
        )
    if positive is not None:
        raise DataError(
            f"{what} has {len(classes)} classes (multiclass): a positive label ({positive!r}) applies to binary "
            "targets only; drop --positive (Python: positive=None), or make the target binary (y == label)"
        )
    order = sorted(range(len(classes)), key=lambda k: _sort_key(classes[k]))
    labels = tuple(classes[k] for k in order)
    codes = np.empty(len(y), dtype=np.int8)
    values = y.to_numpy()
    for code, k in enumerate(order):
        codes[values == counts.index[k]] = code
    return codes, labels


def _sort_key(label: Any) -> tuple[int, Any]:
    """Numbers in numeric order, then everything else in string order (mixed label types cannot be compared)."""
    if isinstance(label, (int, float)) and not isinstance(label, bool):
        return (0, float(label), "")
    return (1, 0.0, str(label))


def _binary_codes(y: Any, counts: Any, classes: list[Any], positive: Any, what: str) -> tuple[np.ndarray, tuple]:
    n = counts.to_numpy()
    if positive is None:
        # the rarer class; on a tie the one whose string form sorts last ("yes" over "no", 1 over 0)
        pos = int(np.argmin(n)) if n[0] != n[1] else int(str(classes[1]) > str(classes[0]))
    else:
        matches = [k for k, c in enumerate(classes) if _same(c, positive)]
        if len(matches) != 1:
            text = " and ".join(f"{c!r} ({k:,} rows)" for c, k in zip(classes, n, strict=True))
            raise DataError(
                f"positive label {positive!r} is not a class of {what}; its classes are {text}: pass one of them"
            )
        pos = matches[0]
    coded = y.to_numpy() == counts.index[pos]
    return np.ascontiguousarray(coded, dtype=np.int8), (classes[1 - pos], classes[pos])


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value it holds (JSON-friendly, and a readable repr)."""
    return value.item() if isinstance(value, np.generic) else value


def _same(label: Any, wanted: Any) -> bool:
    """Whether class ``label`` is the one the user named: equal, or (for text) equal in string or number form."""
    if not isinstance(wanted, str):
        try:
            return bool(label == wanted) and isinstance(label, bool) == isinstance(wanted, bool)
        except (TypeError, ValueError):
            return False
    if str(label) == wanted:
        return True
    if isinstance(label, (bool, str)):
        return False
    try:  # "1" selects 1 and 1.0
        return float(wanted) == float(label)
    except (TypeError, ValueError):
        return False


def _features(frame: Any) -> tuple[Any, tuple[str, ...], tuple[int, ...]]:
    import pandas as pd

    names = tuple(str(c) for c in frame.columns)
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise DataError(f"X has two columns named {twice!r}; column names must be unique")
    columns: dict[str, Any] = {}
    categorical = []
    for j, (name, col) in enumerate(zip(names, (frame.iloc[:, j] for j in range(frame.shape[1])), strict=True)):
        dtype = col.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            columns[name] = col
            categorical.append(j)
        elif pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            columns[name] = col.to_numpy("float32", na_value=np.nan)
        elif pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
            text = col.where(col.isna(), col.astype(str))
            columns[name] = text.astype("category")
            categorical.append(j)
        else:
            raise DataError(
                f"column {name!r} has type {dtype}, which neither engine takes; convert it to numbers (for a date, "
                "e.g. days since a fixed day) or to strings (categories) first"
            )
    if not categorical:
        X = np.ascontiguousarray(np.column_stack([columns[n] for n in names]), dtype=np.float32)
        return X, names, ()
    out = pd.DataFrame({n: columns[n] for n in names})
    out.index = pd.RangeIndex(len(out))
    return out, names, tuple(categorical)


def subsample(data: Any, max_rows: int | None, random_state: int = 0) -> Any:
    """``data`` itself, or its stratified subsample of ``max_rows`` rows (rows kept in order), as :func:`load`.

    Multiclass data are stratified over every class
    (:func:`gbfocal.datasets._stratified_rows`).
    """
    from gbfocal import datasets as gd

    if max_rows is None or max_rows >= data.n_rows:
        return data
    rows = gd._stratified_rows(data.y, max_rows, random_state)
    X = data.X.iloc[rows].reset_index(drop=True) if hasattr(data.X, "iloc") else data.X[rows]
    return gd.Dataset(
        data.name, X, data.y[rows], data.feature_names, data.categorical_features, class_labels=data.class_labels
    )
