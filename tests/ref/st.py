"""Minimal safetensors reader/writer (numpy + json only; no `safetensors` package needed).

Format: 8-byte little-endian header length N, then N bytes of JSON
{name: {"dtype": "F32"|"BF16"|"F16"|..., "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}},
then the raw little-endian data; offsets are relative to the end of the header.

load(path)            -> {name: np.ndarray float32 (BF16/F16 widened) or native int dtype}
load_dir(model_dir)   -> same, from model.safetensors or model.safetensors.index.json shards
save(path, tensors)   -> writes F32 (float arrays) / I64 / I32 tensors, sorted by name, 8-byte aligned header
"""
import json
import os
import struct

import numpy as np

_NP = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32,
       "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _bf16_to_f32(raw):
    u16 = np.frombuffer(raw, dtype="<u2")
    return (u16.astype(np.uint32) << 16).view(np.float32)


def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        if n > 100 * 1024 * 1024:
            raise ValueError(f"{path}: header length {n} is implausible")
        header = json.loads(f.read(n).decode("utf-8"))
    return n, header


def load(path, names=None):
    """Reads every tensor (or only `names`) of one .safetensors file; floats come back as float32."""
    n, header = read_header(path)
    out = {}
    with open(path, "rb") as f:
        for name, info in header.items():
            if name == "__metadata__" or (names is not None and name not in names):
                continue
            dt, shape, (b, e) = info["dtype"], info["shape"], info["data_offsets"]
            f.seek(8 + n + b)
            raw = f.read(e - b)
            if len(raw) != e - b:
                raise ValueError(f"{path}: tensor {name} truncated")
            if dt == "BF16":
                a = _bf16_to_f32(raw)
            elif dt in _NP:
                a = np.frombuffer(raw, dtype=np.dtype(_NP[dt]).newbyteorder("<"))
                if dt == "F16":
                    a = a.astype(np.float32)
            else:
                raise ValueError(f"{path}: tensor {name} has unsupported dtype {dt}")
            count = int(np.prod(shape)) if shape else 1
            if a.size != count:
                raise ValueError(f"{path}: tensor {name} has {a.size} elements, shape {shape} needs {count}")
            out[name] = np.array(a.reshape(shape))  # own, writable copy
    return out


def load_dir(model_dir):
    """Reads a model directory: model.safetensors, or the shards listed in model.safetensors.index.json."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        shards = {}
        for name, shard in weight_map.items():
            shards.setdefault(shard, set()).add(name)
        out = {}
        for shard, names in shards.items():
            part = load(os.path.join(model_dir, shard), names)
            missing = names - set(part)
            if missing:
                raise ValueError(f"{shard}: missing {sorted(missing)[:5]}")
            out.update(part)
        return out
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(single):
        return load(single)
    raise FileNotFoundError(f"{model_dir}: no model.safetensors or model.safetensors.index.json")


def save(path, tensors, metadata=None):
    """Writes tensors (name -> array-like); floating arrays as F32, integer arrays as I64/I32."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        a = np.asarray(tensors[name])
        if np.issubdtype(a.dtype, np.floating):
            a, dt = a.astype("<f4"), "F32"
        elif a.dtype == np.int64:
            a, dt = a.astype("<i8"), "I64"
        elif a.dtype == np.int32:
            a, dt = a.astype("<i4"), "I32"
        else:
            raise ValueError(f"save: {name} has unsupported dtype {a.dtype}")
        raw = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)
