"""scdsim.io: atomic JSON, the resumable JSON-lines log, to_jsonable."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import numpy as np
import pytest

from scdsim.io import JsonlLog, atomic_open, read_jsonl, to_jsonable, write_json_atomic


def test_to_jsonable_converts_numpy_scalars_arrays_and_nonfinite():
    out = to_jsonable({"a": np.float32(0.5), "b": np.int64(3), "c": np.arange(3),
                       "d": (1, np.bool_(True)), 4: float("nan"), "e": np.array([1.0, np.inf])})
    assert out == {"a": 0.5, "b": 3, "c": [0, 1, 2], "d": [1, True], "4": None, "e": [1.0, None]}
    assert type(out["b"]) is int and type(out["a"]) is float and type(out["d"][1]) is bool
    json.dumps(out, allow_nan=False)  # raises if anything non-JSON is left


def test_to_jsonable_converts_torch_tensors_and_dataclasses():
    torch = pytest.importorskip("torch")

    @dataclass(frozen=True)
    class R:
        x: object
        y: float

    out = to_jsonable(R(torch.tensor([[1.5, 2.0]]), torch.tensor(3.0).item()))
    assert out == {"x": [[1.5, 2.0]], "y": 3.0}
    assert to_jsonable(torch.tensor(7, dtype=torch.int64)) == 7
    assert to_jsonable(torch.device("cpu")) == "cpu"


def test_to_jsonable_rejects_unknown_types_by_name():
    with pytest.raises(TypeError, match="object"):
        to_jsonable(object())


def test_write_json_atomic_replaces_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "sub" / "r.json"
    write_json_atomic(p, {"x": np.float64(1.25)})
    write_json_atomic(p, {"x": 2})
    assert json.loads(p.read_text()) == {"x": 2}
    assert sorted(os.listdir(p.parent)) == ["r.json"]


def test_atomic_open_keeps_old_file_when_the_writer_fails(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(p) as f:
            f.write("new, half")
            raise RuntimeError("crash mid-write")
    assert p.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["f.txt"]


def test_atomic_open_rejects_append_mode():
    with pytest.raises(ValueError, match="mode"):
        with atomic_open("x", "a"):
            pass


def test_log_resumes_with_every_record_once(tmp_path):
    p = tmp_path / "log.jsonl"
    log = JsonlLog(p, key="prompt", header={"gamma": 4})
    for i in range(3):
        log.append({"prompt": i, "v": i * 0.5})
    again = JsonlLog(p, key="prompt", header={"gamma": 4})
    assert list(again.records) == [0, 1, 2]
    assert again.values()[2] == {"prompt": 2, "v": 1.0}
    assert not again.dropped_torn_line
    with pytest.raises(ValueError, match="already"):
        again.append({"prompt": 1, "v": 9})
    again.append({"prompt": 3, "v": 1.5})
    assert [r["prompt"] for r in JsonlLog(p, key="prompt").values()] == [0, 1, 2, 3]


def test_log_drops_a_torn_last_line_and_appends_cleanly(tmp_path):
    p = tmp_path / "log.jsonl"
    log = JsonlLog(p, key="prompt", header={"h": 1})
    log.append({"prompt": 0})
    log.append({"prompt": 1})
    with open(p, "ab") as f:  # a write cut short by a kill
        f.write(b'{"prompt": 2, "v": [1, 2')
    log2 = JsonlLog(p, key="prompt", header={"h": 1})
    assert log2.dropped_torn_line
    assert list(log2.records) == [0, 1]
    log2.append({"prompt": 2, "v": [1, 2]})
    recs, good = read_jsonl(p)
    assert recs == [{"header": {"h": 1}}, {"prompt": 0}, {"prompt": 1}, {"prompt": 2, "v": [1, 2]}]
    assert good == p.stat().st_size


def test_log_keeps_a_complete_unterminated_last_line(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text('{"k": 0}\n{"k": 1}')
    log = JsonlLog(p, key="k")
    assert list(log.records) == [0, 1]
    log.append({"k": 2})
    assert p.read_text().splitlines() == ['{"k": 0}', '{"k": 1}', '{"k": 2}']


def test_log_refuses_a_corrupt_middle_line(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text('{"k": 0}\n{"k": \n{"k": 2}\n')
    with pytest.raises(ValueError, match="line 2"):
        JsonlLog(p, key="k")


def test_log_refuses_a_duplicated_key_in_the_file(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text('{"k": 0}\n{"k": 0}\n')
    with pytest.raises(ValueError, match="twice"):
        JsonlLog(p, key="k")


def test_log_refuses_resuming_with_other_inputs(tmp_path):
    p = tmp_path / "log.jsonl"
    JsonlLog(p, key="k", header={"gamma": 4, "rule": "lossless"}).append({"k": 0})
    with pytest.raises(ValueError, match="gamma"):
        JsonlLog(p, key="k", header={"gamma": 5, "rule": "lossless"})


def test_log_key_may_be_a_function(tmp_path):
    log = JsonlLog(tmp_path / "l.jsonl", key=lambda r: (r["a"], r["b"]))
    log.append({"a": 1, "b": 2})
    assert (1, 2) in log and len(log) == 1
    with pytest.raises(TypeError, match="key"):
        JsonlLog(tmp_path / "m.jsonl", key=3)


def test_log_writes_strict_json_for_nan(tmp_path):
    p = tmp_path / "l.jsonl"
    JsonlLog(p, key="k").append({"k": 0, "x": math.nan})
    assert json.loads(p.read_text()) == {"k": 0, "x": None}
