#!/usr/bin/env python3
"""Generates the .npy fixtures of NPYTests (Tests/UNetTrainerTests/Fixtures/npy/).

Run from anywhere with NumPy 2.x:  python3 Tests/UNetTrainerTests/Fixtures/make_npy_fixtures.py
The output is deterministic (fixed seeds), so re-running it reproduces the committed files.
The Swift tests never run this script; they read the committed files and `values.json`.

values.json lists every readable fixture with its dtype, shape, format version and flat C-order
values (integers as JSON integers; floats as JSON numbers, which round-trip exactly through a
double, including float32 values widened to double). It also lists `rejected` fixtures with the
reason a reader must refuse them, and `headers`: headers numpy's writer produces for shapes that
cannot ship as files (over 64 dimensions, so the header no longer fits format 1.0, or huge axes).
"""
import io
import json
import os
import warnings

import numpy as np
from numpy.lib import _format_impl as npformat_impl
from numpy.lib import format as npformat

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "npy")


def save(name, array, version=None):
    path = os.path.join(OUT, name)
    if version is None:
        np.save(path, array)                      # numpy picks the version
    else:
        with open(path, "wb") as f:
            npformat.write_array(f, array, version=version)
    return path


def main():
    os.makedirs(OUT, exist_ok=True)
    for old in os.listdir(OUT):
        if old.endswith(".npy"):
            os.remove(os.path.join(OUT, old))

    rng = np.random.default_rng(20240611)
    readable = []

    def add(name, array, version=None):
        save(name, array, version)
        with open(os.path.join(OUT, name), "rb") as f:
            major, minor = f.read(8)[6:8]
        flat = array.reshape(-1)
        entry = {
            "file": name,
            "dtype": array.dtype.str,
            "shape": list(array.shape),
            "version": [major, minor],
        }
        if array.dtype.kind == "f":
            entry["floats"] = [float(x) for x in flat]
        else:
            entry["ints"] = [int(x) for x in flat]
        readable.append(entry)

    # |u1, rank 4 (N, 1, H, W) as the Keras tutorial saved its image stacks.
    add("u1_n1hw.npy", rng.integers(0, 256, size=(3, 1, 4, 5), dtype=np.uint8))
    # |u1, rank 3 (N, H, W).
    add("u1_nhw.npy", rng.integers(0, 256, size=(2, 3, 4), dtype=np.uint8))
    # <i4, rank 2, with both extremes.
    i4 = rng.integers(-1000, 1000, size=(3, 4), dtype=np.int32)
    i4[0, 0] = np.iinfo(np.int32).min
    i4[2, 3] = np.iinfo(np.int32).max
    add("i4_2d.npy", i4)
    # <f4, ranks 1 and 3 (random normal values, plus signed zero and float32 extremes).
    f4 = rng.standard_normal(7).astype(np.float32)
    f4[1] = -0.0
    f4[2] = np.finfo(np.float32).max
    f4[3] = np.finfo(np.float32).smallest_subnormal
    add("f4_1d.npy", f4)
    add("f4_3d.npy", rng.standard_normal((2, 3, 2)).astype(np.float32))
    # <f8, rank 0.
    add("f8_0d.npy", np.array(np.pi, dtype=np.float64))
    # <f8, rank 2 (a 10-digit first axis changes numpy's spare header space).
    add("f8_2d.npy", rng.standard_normal((2, 3)))
    # <i8, rank 1, beyond 32 bits (powers of two are exact even through a double-based parser).
    add("i8_1d.npy", np.array([-(2**62), -1, 0, 2**40, 2**53], dtype=np.int64))
    # Empty arrays: a zero first axis, and a zero inner axis.
    add("f4_empty.npy", np.zeros((0, 3), dtype=np.float32))
    add("i4_empty_inner.npy", np.zeros((2, 0, 3), dtype=np.int32))
    # Explicit format versions 2.0 and 3.0.
    add("f4_v2.npy", rng.standard_normal((2, 3)).astype(np.float32), version=(2, 0))
    add("i4_v3.npy", np.arange(-2, 2, dtype=np.int32), version=(3, 0))

    # Files a reader must reject.
    rejected = []

    def reject(name, array, reason):
        save(name, array)
        rejected.append({"file": name, "reason": reason})

    reject("be_f4.npy", np.arange(3, dtype=">f4"), "unsupported dtype")
    reject("fortran_f4.npy", np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)),
           "fortran_order")
    reject("b1.npy", np.array([True, False]), "unsupported dtype")
    reject("c8.npy", np.arange(2, dtype="<c8"), "unsupported dtype")
    reject("U3.npy", np.array(["ab", "cde"]), "unsupported dtype")
    reject("object.npy", np.array([1, "x"], dtype=object), "unsupported dtype")

    # Headers for shapes numpy arrays cannot have (more than 64 dimensions) or that are too large
    # to ship, computed by numpy's own header writer from the header dict: the version numpy
    # chooses and the complete header bytes (as a latin-1 string), or only its length when long.
    headers = []
    for descr, shape in [("|u1", (1,) * 22000),        # header too long for format 1.0
                         ("<f8", (2**62, 3, 2**40)),     # a 19-digit first axis
                         ("<i8", (2**63 - 1,)),          # the largest first axis
                         ("<f4", (1,) * 64),             # numpy's maximum rank
                         ("<f4", (1,) * 36)]:            # already aligned: numpy pads 64 more
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")             # "Stored array in format 2.0" warning
            npformat_impl._write_array_header(
                buf, {"descr": descr, "fortran_order": False, "shape": shape}, None)
        raw = buf.getvalue()
        entry = {"dtype": descr, "shape": list(shape) if len(shape) < 100 else None,
                 "rank": len(shape), "version": list(raw[6:8]), "headerLength": len(raw)}
        if len(raw) <= 2048:
            entry["header"] = raw.decode("latin1")
        headers.append(entry)

    with open(os.path.join(OUT, "values.json"), "w") as f:
        # One entry a line: small, and diffs stay readable.
        def lines(entries):
            return ",\n  ".join(json.dumps(e) for e in entries)
        f.write('{"numpy": %s,\n "readable": [\n  %s],\n "rejected": [\n  %s],\n "headers": [\n  %s]}\n'
                % (json.dumps(np.__version__), lines(readable), lines(rejected), lines(headers)))


if __name__ == "__main__":
    main()
