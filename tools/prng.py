"""SplitMix64 tensors seeded by name: the Python twin of host/model/random_model.c.

Every random test model and input is drawn from here (and from C) so goldens
never need committed weights. Values: offset + scale*(2u-1), u = 24-bit
uniform in [0,1), computed in float32 exactly as the C code does.
"""
import math

import numpy as np

MASK = (1 << 64) - 1


def fnv1a64(name: str) -> int:
    h = 0xCBF29CE484222325
    for b in name.encode():
        h ^= b
        h = (h * 0x100000001B3) & MASK
    return h


def splitmix64_stream(state: int, n: int) -> np.ndarray:
    """n successive outputs, vectorised: state advances by the golden gamma."""
    gamma = np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = np.uint64(state) + gamma * np.arange(1, n + 1, dtype=np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z


def fill(name: str, seed: int, shape, scale: float, offset: float = 0.0) -> np.ndarray:
    n = int(np.prod(shape)) if len(shape) else 1
    z = splitmix64_stream((fnv1a64(name) ^ seed) & MASK, n)
    u = (z >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)
    v = (np.float32(2.0) * u - np.float32(1.0)) * np.float32(scale) + np.float32(offset)
    return v.astype(np.float32).reshape(shape)


BLOCKS = {"vgg11": [1, 1, 2, 2, 2], "vgg13": [2, 2, 2, 2, 2],
          "vgg16": [2, 2, 3, 3, 3], "vgg19": [2, 2, 4, 4, 4]}


def random_vgg_state(arch, widths, hidden, n_classes, avgpool, seed):
    """torchvision-keyed state dict with the same init rules as random_model.c."""
    bn = arch.endswith("_bn")
    blocks = BLOCKS[arch[:-3] if bn else arch]
    sd = {}
    module, k, ch = 0, 0, 3
    for nb in blocks:
        for _ in range(nb):
            out = widths[k]
            sd[f"features.{module}.weight"] = fill(f"features.{module}.weight", seed, (out, ch, 3, 3),
                                                   math.sqrt(6.0 / (ch * 9.0)))
            sd[f"features.{module}.bias"] = fill(f"features.{module}.bias", seed, (out,), 0.1)
            module += 1
            if bn:
                for part, sc, off in (("weight", 0.5, 1.0), ("bias", 0.1, 0.0),
                                      ("running_mean", 0.1, 0.0), ("running_var", 0.5, 1.0)):
                    key = f"features.{module}.{part}"
                    sd[key] = fill(key, seed, (out,), sc, off)
                module += 1
            module += 1  # relu
            ch = out
            k += 1
        module += 1  # pool
    dims = [ch * avgpool * avgpool, hidden[0], hidden[1], n_classes]
    for i in range(3):
        key = f"classifier.{3 * i}"
        sd[key + ".weight"] = fill(key + ".weight", seed, (dims[i + 1], dims[i]), math.sqrt(6.0 / dims[i]))
        sd[key + ".bias"] = fill(key + ".bias", seed, (dims[i + 1],), 0.1)
    return sd


def standard_widths(arch):
    bn = arch.endswith("_bn")
    blocks = BLOCKS[arch[:-3] if bn else arch]
    widths = []
    for b, nb in enumerate(blocks):
        widths += [[64, 128, 256, 512, 512][b]] * nb
    return widths
