"""Result files: atomic writes, a resumable JSON-lines log, and JSON-safe conversion.

``write_json_atomic(path, obj)``   JSON written to a temporary file in the same directory, then
                                   ``os.replace``-d over ``path``: a reader sees the old file or
                                   the new one, never half of one.
``atomic_open(path, mode)``        the same for any writer (e.g. ``fig.savefig(f, format="png")``).
``JsonlLog(path, key, header)``    an append-only JSON-lines log of records keyed by ``key``.
                                   Each record is one line, flushed and fsync-ed as it is
                                   written. Reopening after an interruption reads what is there,
                                   drops a torn last line (a write cut short), and refuses a
                                   header that differs from the one the log was started with, so
                                   a resumed run neither loses a finished record nor counts one
                                   twice nor mixes two configurations.
``to_jsonable(obj)``               NumPy/torch scalars and arrays, tuples, sets, paths and
                                   dataclasses to plain JSON types; non-finite floats to None
                                   (JSON has no NaN).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["to_jsonable", "write_json_atomic", "atomic_open", "read_jsonl", "JsonlLog"]


def to_jsonable(obj):
    """Convert ``obj`` to plain JSON types (dict, list, str, int, float, bool, None).

    NumPy and torch scalars become Python numbers, arrays and tensors nested lists, tuples and
    sets lists, paths strings, dataclasses (and objects with ``to_dict()``) dicts; NaN and
    infinities become None. Dict keys become strings. Anything else raises TypeError.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return [to_jsonable(v) for v in sorted(obj, key=repr)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    mod = type(obj).__module__ or ""
    if mod.startswith("numpy"):
        import numpy as np

        if isinstance(obj, np.ndarray):
            return to_jsonable(obj.tolist())
        if isinstance(obj, np.generic):
            return to_jsonable(obj.item())
    if mod.startswith("torch"):
        import torch

        if isinstance(obj, torch.Tensor):
            return to_jsonable(obj.detach().cpu().tolist())
        if isinstance(obj, (torch.device, torch.dtype)):
            return str(obj)
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return to_jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    raise TypeError(f"to_jsonable: cannot convert an object of type {type(obj).__name__}")


@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path`` atomically.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path, obj, indent=1):
    """Write ``to_jsonable(obj)`` as JSON to ``path`` atomically; return the path."""
    data = to_jsonable(obj)
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=indent, allow_nan=False)
        f.write("\n")
    return Path(path)


def read_jsonl(path):
    """Records of a JSON-lines file, tolerating a torn (unterminated, unparsable) last line.

    Returns
    -------
    (records, good_bytes): the parsed lines and the byte length of the valid prefix.

    Raises
    ------
    ValueError
        If a line other than the last one is not valid JSON (the file is corrupt, not torn).
    """
    raw = Path(path).read_bytes()
    records, pos = [], 0
    lines = raw.split(b"\n")
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        end = pos + len(line) + (0 if last else 1)
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                if last or (i == len(lines) - 2 and not lines[-1].strip()):
                    # a write cut short: the valid prefix ends before this line
                    return records, pos
                raise ValueError(f"{path}: line {i + 1} is not valid JSON ({e.msg}); the log "
                                 "is corrupt, not merely cut short") from None
            if last:  # parsable but unterminated: keep it, the newline is added on append
                return records, pos + len(line)
        pos = end
    return records, pos


class JsonlLog:
    """Append-only JSON-lines log of records, keyed, that resumes after an interruption.

    Parameters
    ----------
    path : str or Path
        The log file (created with its directory if missing).
    key : str or callable
        A record's key: the name of a field (e.g. ``"prompt"``) or a function of the record.
    header : dict, optional
        The inputs that made the run. Written as the first line ``{"header": ...}`` of a new
        log; on reopening, a log whose header differs raises ValueError (resuming with other
        settings would mix two runs).

    Attributes
    ----------
    records : dict
        key -> record, in the order written, for every complete record in the file.
    dropped_torn_line : bool
        Whether a torn last line was found and cut off when the log was opened.
    """

    def __init__(self, path, key: str | Callable = "key", header: Mapping | None = None):
        self.path = Path(path)
        if not (isinstance(key, str) or callable(key)):
            raise TypeError(f"key must be a field name or a callable, got {type(key).__name__}")
        self._key = key if callable(key) else (lambda r, k=key: r[k])
        self.header = to_jsonable(dict(header)) if header is not None else None
        self.records: dict = {}
        self.dropped_torn_line = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size > 0:
            self._load()
        else:
            with open(self.path, "w", encoding="utf-8") as f:
                if self.header is not None:
                    f.write(json.dumps({"header": self.header}, allow_nan=False) + "\n")
                f.flush()
                os.fsync(f.fileno())

    def _load(self):
        rows, good = read_jsonl(self.path)
        size = self.path.stat().st_size
        if good < size:
            self.dropped_torn_line = True
        with open(self.path, "r+b") as f:  # cut the torn tail, end on a newline
            f.truncate(good)
            if good:
                f.seek(good - 1)
                if f.read(1) != b"\n":
                    f.write(b"\n")
            f.flush()
            os.fsync(f.fileno())
        if rows and isinstance(rows[0], dict) and set(rows[0]) == {"header"}:
            old, rows = rows[0]["header"], rows[1:]
        else:
            old = None
        if self.header is not None and old != self.header:
            diff = sorted(k for k in set(old or {}) | set(self.header)
                          if (old or {}).get(k) != self.header.get(k))
            raise ValueError(f"{self.path} was started with other inputs (differing: "
                             f"{', '.join(diff) or 'no header'}); use another output or "
                             "delete it to start over")
        if self.header is None:
            self.header = old
        for r in rows:
            k = self._key(r)
            if k in self.records:
                raise ValueError(f"{self.path}: key {k!r} appears twice; the log is corrupt")
            self.records[k] = r

    def __contains__(self, key) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def append(self, record: Mapping):
        """Write one record (a line, flushed and fsync-ed); refuse a key already logged."""
        rec = to_jsonable(dict(record))
        k = self._key(rec)
        if k in self.records:
            raise ValueError(f"key {k!r} is already in {self.path}; a record is never written twice")
        line = json.dumps(rec, allow_nan=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.records[k] = rec
        return rec

    def values(self) -> list:
        """The logged records, in the order they were written."""
        return list(self.records.values())
