#!/usr/bin/env python3
"""Prints an UNetTrainer checkpoint (or any Keras legacy .h5 weights file) as h5py sees it, and
optionally checks it.

    python3 Launch/reference/check_checkpoint_h5py.py CHECKPOINT.h5            # the tree
    python3 Launch/reference/check_checkpoint_h5py.py CHECKPOINT.h5 --verify   # + header CRC-32, FNV-1a checksums
    /work/.venv-keras/bin/python Launch/reference/check_checkpoint_h5py.py CHECKPOINT.h5 --keras
        # + Keras' model.load_weights into the tutorial's U-Net (unet_keras.py, in this folder or
        #   $UNET_REFERENCE_DIR), and
        #   every loaded weight compared bit for bit with the file's datasets

Needs h5py and NumPy (the tree and --verify); --keras also needs TensorFlow/Keras.
"""
import argparse
import json
import os
import struct
import sys
import zlib

import h5py
import numpy as np


def type_text(tid):
    cls = tid.get_class()
    if cls == h5py.h5t.STRING:
        cset = "UTF-8" if tid.get_cset() == h5py.h5t.CSET_UTF8 else "ASCII"
        return f"string vlen {cset}" if tid.is_variable_str() else f"string fixed {tid.get_size()} {cset}"
    if cls == h5py.h5t.FLOAT:
        return f"float{8 * tid.get_size()}"
    if cls == h5py.h5t.INTEGER:
        sign = "int" if tid.get_sign() == h5py.h5t.SGN_2 else "uint"
        return f"{sign}{8 * tid.get_size()}"
    return f"class {cls}"


def short(value, limit=100):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        value = [v.decode() if isinstance(v, bytes) else v for v in value.tolist()]
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def print_tree(f):
    def attrs(obj, indent):
        for name in sorted(obj.attrs):
            a = obj.attrs.get_id(name)
            shape = "scalar" if a.shape == () else str(a.shape)
            print(f"{indent}@{name}: {type_text(a.get_type())} {shape} = {short(obj.attrs[name])}")

    def visit(name, obj):
        depth = name.count("/")
        indent = "    " * depth
        if isinstance(obj, h5py.Dataset):
            layout = "contiguous" if obj.chunks is None else f"chunked {obj.chunks}"
            print(f"{indent}/{name}  dataset {obj.shape} {type_text(obj.id.get_type())} {layout}")
        else:
            print(f"{indent}/{name}/  group")
        attrs(obj, indent + "    ")

    print("/  (root)")
    attrs(f, "    ")
    f.visititems(visit)


def fnv1a64(array):
    h = 0xCBF29CE484222325
    for byte in np.ascontiguousarray(array, dtype="<f4").tobytes():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def verify_header(path):
    """The 512-byte header UNetTrainer writes in HDF5's user block (Sources/Checkpoint/
    CheckpointFile.swift): magic, version, user block size, file length, CRC-32 (zlib's) of the
    bytes after the block, CRC-32 of the block with its own field zero. Files without it (Keras'
    own, or checkpoints written before it existed) have nothing to check here."""
    with open(path, "rb") as file:
        data = file.read()
    if not data.startswith(b"UNETCKPT"):
        print("no UNetTrainer header (a Keras file, or a checkpoint from before the header): not checked")
        return True
    version, block, length, crc, header_crc = struct.unpack_from("<IIQII", data, 8)
    header = bytearray(data[:512])
    header[28:32] = bytes(4)
    checks = [
        ("header crc32", zlib.crc32(header) == header_crc),
        ("version 1", version == 1),
        ("512-byte user block", block == 512),
        (f"length {length}", length == len(data)),
        (f"crc32 {crc:#010x} of bytes [512, {length})", zlib.crc32(data[512:]) == crc),
    ]
    for name, good in checks:
        print(f"header: {name} {'ok' if good else 'MISMATCH'}")
    return all(good for _, good in checks)


def weights_in_order(f):
    """The float32 weight arrays as Keras reads them: weighted layers of layer_names in order, each
    weight_names entry in order."""
    arrays = []
    for layer in f.attrs["layer_names"]:
        layer = layer.decode() if isinstance(layer, bytes) else layer
        names = f[layer].attrs.get("weight_names", [])
        for w in names:
            w = w.decode() if isinstance(w, bytes) else w
            arrays.append((f"{layer}/{w}", np.asarray(f[layer][w], dtype=np.float32)))
    return arrays


def verify(f):
    ok = True
    if "unet_trainer" not in f:
        print("no unet_trainer group: a weights-only file, nothing to verify")
        return True
    group = f["unet_trainer"]
    flat = np.concatenate([a.ravel() for _, a in weights_in_order(f)])
    checks = [("weights", flat, int(group.attrs["parameters_fnv1a64"]))]
    if "training_state" in group:
        for name in ("adam_m", "adam_v"):
            d = group["training_state"][name]
            checks.append((name, d[()], int(d.attrs["fnv1a64"])))
    for name, values, stored in checks:
        computed = fnv1a64(values)
        good = computed == stored
        ok &= good
        print(f"{name}: {values.size} floats, fnv1a64 {computed:#018x} {'ok' if good else f'MISMATCH (stored {stored:#018x})'}")
    return ok


def keras_check(f, path):
    sys.path.insert(0, os.environ.get("UNET_REFERENCE_DIR", os.path.dirname(os.path.abspath(__file__))))
    import unet_keras as U  # noqa: E402

    c = json.loads(f["unet_trainer"].attrs["configuration"])
    model = U.build_unet(c["rows"], c["cols"], c["filters"], c["depth"], c["upsample"])
    model.load_weights(path)
    stored = weights_in_order(f)
    loaded = [w.numpy() for w in model.weights]
    same = len(stored) == len(loaded) and all(
        a.shape == b.shape and np.array_equal(a, b) for (_, a), b in zip(stored, loaded))
    print(f"keras load_weights: {len(loaded)} weights, {'bit-exact' if same else 'DIFFERENT'}")
    return same


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--verify", action="store_true",
                        help="check the header's CRC-32 and recompute the FNV-1a checksums (slow in Python)")
    parser.add_argument("--keras", action="store_true", help="load the file with Keras' model.load_weights")
    args = parser.parse_args()
    ok = True
    if args.verify:
        ok &= verify_header(args.checkpoint)
    with h5py.File(args.checkpoint, "r") as f:
        print_tree(f)
        if args.verify:
            ok &= verify(f)
        if args.keras:
            ok &= keras_check(f, args.checkpoint)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
