#!/usr/bin/python3
"""Write and read safetensors files by hand (no `safetensors` package needed).

File layout (https://github.com/huggingface/safetensors, "Format"):
  8 bytes   little-endian u64 N = header length
  N bytes   JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, ...,
            "__metadata__": {str: str}}, padded with spaces to a multiple of 8
  rest      raw little-endian tensor data, offsets relative to the data start

We write F32 only, tensors in the order given (torchvision state-dict order),
contiguous, with every metadata value a string as the format requires.
`vgg_metadata` builds the keys the attrib engine reads (docs/models.md).
"""

import json
import struct

import numpy as np

DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8"),
          "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "U8": np.dtype("u1")}


def _to_numpy(t):
    if hasattr(t, "detach"):  # torch.Tensor, without importing torch here
        t = t.detach().cpu().numpy()
    return np.asarray(t)


def write_safetensors(path, tensors, metadata=None):
    """tensors: iterable of (name, array-like) or a dict (order kept);
    stored as little-endian float32. metadata: dict of str -> str."""
    items = list(tensors.items()) if hasattr(tensors, "items") else list(tensors)
    header, blobs, offset = {}, [], 0
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("safetensors metadata must map str to str: %r" % (k,))
        header["__metadata__"] = dict(metadata)
    for name, t in items:
        if name == "__metadata__" or name in header:
            raise ValueError("bad or duplicate tensor name %r" % name)
        a = np.ascontiguousarray(_to_numpy(t), dtype=DTYPES["F32"])
        blob = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((-len(hjson)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for blob in blobs:
            f.write(blob)


def read_safetensors(path):
    """-> (dict name -> numpy array in file order, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {}) or {}
    data = memoryview(raw)[8 + n:]
    tensors = {}
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = info["data_offsets"]
        dt = DTYPES.get(info["dtype"])
        if dt is None:
            raise ValueError("%s: unsupported dtype %s" % (name, info["dtype"]))
        a = np.frombuffer(data[b:e], dtype=dt).reshape(info["shape"])
        tensors[name] = a.astype(np.float32) if info["dtype"] == "F16" else a.copy()
    return tensors, metadata


def vgg_metadata(name, labels, mean, std, resize, crop, avgpool=7,
                 interpolation="bilinear", arch="vgg16", source=""):
    """labels: list of (id, readable name) in class-index order."""
    return {
        "format": "pt",
        "arch": arch,
        "name": name,
        "avgpool": str(int(avgpool)),
        "resize": str(int(resize)),
        "crop": str(int(crop)),
        "interpolation": interpolation,
        "mean": json.dumps([float(m) for m in mean]),
        "std": json.dumps([float(s) for s in std]),
        "labels": json.dumps([[str(i), str(n)] for i, n in labels]),
        "source": source,
    }


def _module_order(key):
    """features.N.* before classifier.N.*, by N, then weight, bias, BN stats."""
    parts = key.split(".")
    group = {"features": 0, "avgpool": 1, "classifier": 2}.get(parts[0], 3)
    idx = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    leaf = ["weight", "bias", "running_mean", "running_var"]
    li = leaf.index(parts[-1]) if parts[-1] in leaf else len(leaf)
    return (group, idx, li, key)


def write_vgg(path, state_dict, metadata):
    """Write a torchvision-named VGG state dict (float tensors only; BN's
    num_batches_tracked is dropped) in network order."""
    items = [(k, v) for k, v in state_dict.items() if not k.endswith("num_batches_tracked")]
    items.sort(key=lambda kv: _module_order(kv[0]))
    write_safetensors(path, items, metadata)
