"""Files the service writes beside its tables (the SQLite database, rejected rows, reports,
a run's work folder): readable by the service's user only, and CSV cells that no
spreadsheet runs as a formula."""

import csv
import os
from contextlib import suppress
from pathlib import Path

import pandas as pd

PRIVATE_FILE, PRIVATE_FOLDER = 0o600, 0o700
# OWASP's CSV injection rule: a cell starting with one of these is a formula (or a DDE call)
# to a spreadsheet; a leading single quote makes it text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def private_folder(path: Path) -> Path:
    """The folder, created (with its parents) readable by this user only where it does not
    exist; an existing one keeps its mode: whoever made it chose who reads it."""
    path.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
    return path


def create_private_file(path: Path) -> None:
    """An empty file readable by this user only, unless the file exists (left as it is,
    and never opened: closing a descriptor of a SQLite database drops every lock this
    process holds on it) or its folder does not (whoever opens it then says so)."""
    if path.parent.is_dir():
        with suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))


def write_private_bytes(path: Path, content: bytes) -> Path:
    """The file replaced by `content`, created readable by this user only."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE), "wb") as f:
        f.write(content)
    return path


def inert_cell(value: object) -> object:
    """The value as a spreadsheet shows it and never runs it: text that starts like a
    formula gets a leading single quote; anything else is left as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def inert_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with each text cell, and each column name, made inert (numbers and times
    stay as they are: -1.5 is no formula)."""
    text = [
        name
        for name, dtype in frame.dtypes.items()
        if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype)
    ]
    inert = frame.assign(**{name: frame[name].map(inert_cell) for name in text})
    return inert.rename(columns=inert_cell)


def write_private_csv(frame: pd.DataFrame, path: Path, append: bool = False) -> Path:
    """The frame as CSV with inert cells, in a file readable by this user only; appended
    without a header to a file that exists when `append`. Text is quoted: a carriage return
    in a cell would otherwise end its row for most readers."""
    header = not (append and path.exists())
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    with os.fdopen(os.open(path, flags, PRIVATE_FILE), "w", newline="", encoding="utf-8") as f:
        inert_frame(frame).to_csv(f, index=False, header=header, quoting=csv.QUOTE_NONNUMERIC)
    return path
