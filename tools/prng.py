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


def normal(name: str, seed: int, shape, offset: int = 0) -> np.ndarray:
    """Standard normal deviates offset.. of the stream seeded like fill: Box-Muller
    (cos branch, float64) of draws 2k and 2k+1, the twin of at_prng_normal."""
    n = int(np.prod(shape)) if len(shape) else 1
    gamma = 0x9E3779B97F4A7C15
    z = splitmix64_stream(((fnv1a64(name) ^ seed) + gamma * 2 * offset) & MASK, 2 * n)
    bits = (z >> np.uint64(40)).astype(np.float64)
    u1 = (bits[0::2] + 0.5) * 2.0 ** -24
    u2 = bits[1::2] * 2.0 ** -24
    v = np.sqrt(-2.0 * np.log(u1)) * np.cos(6.283185307179586 * u2)
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


RESNETS = {"resnet18": ([2, 2, 2, 2], False), "resnet34": ([3, 4, 6, 3], False),
           "resnet50": ([3, 4, 6, 3], True), "resnet101": ([3, 4, 23, 3], True),
           "resnet152": ([3, 8, 36, 3], True)}
RESNET_WIDTHS = [64, 64, 128, 256, 512]  # stem, then each stage's planes (torchvision)


def resnet_tensors(arch, widths, n_classes):
    """(key, shape, kind) of a torchvision ResNet state dict in order: the twin
    of host/model/resnet.c at_resnet_tensors. kind: conv, bn (weight, bias,
    running_mean, running_var), bn_last (the weight of the BN before a
    block's add), fc_weight, fc_bias."""
    blocks, bottleneck = RESNETS[arch]
    exp = 4 if bottleneck else 1
    out = []

    def bn(prefix, c, last):
        for part in ("weight", "bias", "running_mean", "running_var"):
            kind = "bn_last" if last and part == "weight" else "bn_" + part
            out.append((f"{prefix}.{part}", (c,), kind))

    stem = widths[0]
    out.append(("conv1.weight", (stem, 3, 7, 7), "conv"))
    bn("bn1", stem, False)
    c = stem
    for s, nb in enumerate(blocks):
        for j in range(nb):
            pl, p = widths[s + 1], f"layer{s + 1}.{j}"
            oc, stride = pl * exp, 2 if s > 0 and j == 0 else 1
            n = 3 if bottleneck else 2
            for q in range(1, n + 1):
                i, o = (c if q == 1 else pl), (oc if q == n else pl)
                k = 1 if bottleneck and q != 2 else 3
                out.append((f"{p}.conv{q}.weight", (o, i, k, k), "conv"))
                bn(f"{p}.bn{q}", o, q == n)
            if stride != 1 or c != oc:
                out.append((f"{p}.downsample.0.weight", (oc, c, 1, 1), "conv"))
                bn(f"{p}.downsample.1", oc, False)
            c = oc
    out.append(("fc.weight", (n_classes, c), "fc_weight"))
    out.append(("fc.bias", (n_classes,), "fc_bias"))
    return out


def random_resnet_state(arch, widths, n_classes, seed):
    """torchvision-keyed ResNet state dict, the init rules of random_model.c."""
    sd = {}
    for key, shape, kind in resnet_tensors(arch, widths, n_classes):
        scale, offset = 0.1, 0.0
        if kind == "conv":
            scale = math.sqrt(6.0 / (shape[1] * shape[2] * shape[3]))
        elif kind in ("bn_weight", "bn_running_var"):
            scale, offset = 0.5, 1.0
        elif kind == "bn_last":
            scale, offset = 0.1, 0.3
        elif kind == "fc_weight":
            scale = math.sqrt(6.0 / shape[1])
        sd[key] = fill(key, seed, shape, scale, offset)
    return sd
