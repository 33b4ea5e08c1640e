"""A torchvision-layout ResNet with channel gates, built from a state dict:
the PyTorch oracle for the engine's ResNets (docs/models.md#resnet). Blocks
are torchvision's own BasicBlock / Bottleneck modules at the widths the
tensor shapes give, so keys and module names are torchvision's; the gated
forward multiplies each conv's channels after its ReLU where one follows and
at its BN before the add otherwise, in module order (conv1, conv2, conv3,
downsample.0)."""
import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from prng import RESNETS
from vgg_torch import load_state


class GatedResNet(nn.Module):
    """torchvision's ResNet modules; model(x) is the ungated forward.
    trunk / head split it at a block output ("layer3.1", "layer4") or
    "maxpool" for the methods' reference (tools/ref_methods.py); relu is the
    function every ReLU applies (guided backprop and deconvnet swap it)."""

    relu_fn = staticmethod(torch.relu)

    def forward(self, x):
        return forward(self, x)[0]

    def trunk(self, x, layer):
        return forward(self, x, capture=(layer,), stop=layer)[1][layer]

    def head(self, a, layer):
        return forward(self, a, start=layer)[0]


def build_resnet(arch, state):
    blocks, bottleneck = RESNETS[arch]
    block_cls = Bottleneck if bottleneck else BasicBlock
    model = GatedResNet()
    stem = state["conv1.weight"].shape[0]
    model.conv1 = nn.Conv2d(state["conv1.weight"].shape[1], stem, 7, 2, 3, bias=False)
    model.bn1 = nn.BatchNorm2d(stem)
    model.relu = nn.ReLU(inplace=False)
    model.maxpool = nn.MaxPool2d(3, 2, 1)
    c = stem
    for s, nb in enumerate(blocks):
        layer = []
        for j in range(nb):
            p = f"layer{s + 1}.{j}"
            planes = state[f"{p}.conv1.weight"].shape[0]
            stride = 2 if s > 0 and j == 0 else 1
            down = None
            if f"{p}.downsample.0.weight" in state:
                oc = state[f"{p}.downsample.0.weight"].shape[0]
                down = nn.Sequential(nn.Conv2d(c, oc, 1, stride, bias=False), nn.BatchNorm2d(oc))
            blk = block_cls(c, planes, stride, down)
            blk.relu = nn.ReLU(inplace=False)
            layer.append(blk)
            c = planes * block_cls.expansion
        setattr(model, f"layer{s + 1}", nn.Sequential(*layer))
    model.avgpool = nn.AdaptiveAvgPool2d(1)
    model.fc = nn.Linear(c, state["fc.weight"].shape[0])
    return load_state(model, state)


def use_module_forward(model):
    """Makes model(x) torchvision's own ungated forward, the stages and blocks
    called as modules, so that hooks and a peer's patches on layerN or a
    block apply (the walk of forward() below calls the blocks' parts)."""
    def forward_modules(x):
        x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        x = model.layer4(model.layer3(model.layer2(model.layer1(x))))
        return model.fc(torch.flatten(model.avgpool(x), 1))
    model.forward = forward_modules
    return model


def gate_layout(model):
    """[(conv module name, gate offset, channels)] in module order, and the total."""
    out, off = [], 0
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            out.append((name, off, m.out_channels))
            off += m.out_channels
    return out, off


def _block_names(model):
    out = ["maxpool"]
    for s in range(1, 5):
        layer = getattr(model, f"layer{s}")
        out += [f"layer{s}.{j}" for j in range(len(layer))]
    return out


def _canonical(model, layer):
    """"layerN" -> its last block "layerN.j"."""
    if layer and layer.startswith("layer") and "." not in layer:
        return f"{layer}.{len(getattr(model, layer)) - 1}"
    return layer


def gate_nodes(model):
    """[(engine node holding the conv's gates, offset, channels)] in gate order:
    the ReLU after the conv where one follows, its BN before the add otherwise."""
    out = []
    for name, off, c in gate_layout(model)[0]:
        if name == "conv1":
            node = "relu"
        elif name.endswith("downsample.0"):
            node = name[:-1] + "1"
        else:
            p, conv = name.rsplit(".", 1)
            q = int(conv[4:])
            last = 3 if f"{p}.conv3" in dict(model.named_modules()) else 2
            node = f"{p}.bn{q}" if q == last else f"{p}." + ("relu" if q == 1 else "relu_1")
        out.append((node, off, c))
    return out


def forward(model, x, gates=None, capture=(), start=None, stop=None):
    """Gated forward (gates [n, n_gates] or None); returns logits and a dict
    name -> output for the engine's node names in capture ("conv1", "relu",
    "maxpool", "layer4.2.bn3", "layer4.2.add", "layer4.2", "layer4",
    "avgpool", "fc"). start: x is that block output's value (or "maxpool"'s)
    and the pass goes on from there; stop: return once that one is computed."""
    offs = {name: (off, c) for name, off, c in gate_layout(model)[0]}
    n = x.shape[0]
    caps = {}
    relu_fn = getattr(model, "relu_fn", torch.relu)
    start, stop = _canonical(model, start), _canonical(model, stop)
    blocks = _block_names(model)
    if start is not None and start not in blocks:
        raise ValueError(f"a pass can start at a block output or maxpool, not {start!r}")
    started = start is None

    def keep(name, t):
        if name in capture:
            if t.requires_grad:
                t.retain_grad()
            caps[name] = t
        return t

    def gate(conv, t):
        if gates is None:
            return t
        off, c = offs[conv]
        return t * gates[:, off:off + c].reshape(n, c, 1, 1)

    capture = tuple(capture) + tuple(_canonical(model, c) for c in capture if c and c.startswith("layer"))
    if started:
        x = keep("conv1", model.conv1(x))
        x = keep("bn1", model.bn1(x))
        x = keep("relu", gate("conv1", relu_fn(x)))
        x = keep("maxpool", model.maxpool(x))
        if stop == "maxpool":
            return None, caps
    started = started or start == "maxpool"
    for s in range(1, 5):
        layer = getattr(model, f"layer{s}")
        for j, blk in enumerate(layer):
            p = f"layer{s}.{j}"
            if not started:
                started = p == start
                continue
            bottleneck = isinstance(blk, Bottleneck)
            nconv = 3 if bottleneck else 2
            relus = ["relu", "relu_1"]
            y = x
            for q in range(1, nconv + 1):
                y = keep(f"{p}.conv{q}", getattr(blk, f"conv{q}")(y))
                y = getattr(blk, f"bn{q}")(y)
                if q < nconv:
                    y = keep(f"{p}.bn{q}", y)
                    y = keep(f"{p}.{relus[q - 1]}", gate(f"{p}.conv{q}", relu_fn(y)))
                else:
                    y = keep(f"{p}.bn{q}", gate(f"{p}.conv{q}", y))
            idt = x
            if blk.downsample is not None:
                idt = keep(f"{p}.downsample.0", blk.downsample[0](x))
                idt = keep(f"{p}.downsample.1", gate(f"{p}.downsample.0", blk.downsample[1](idt)))
            y = keep(f"{p}.add", y + idt)
            x = keep(p, relu_fn(y))
            if stop == p:
                caps.update({c: caps[p] for c in capture if _canonical(model, c) == p})
                return None, caps
        if f"layer{s}" in capture:
            caps[f"layer{s}"] = caps.get(f"layer{s}.{len(layer) - 1}", x)
    x = keep("avgpool", model.avgpool(x))
    x = keep("fc", model.fc(torch.flatten(x, 1)))
    return x, caps


def self_check():
    """Ungated forward equals torchvision's own resnet forward on the same weights."""
    import torchvision
    import prng
    for arch in ("resnet18", "resnet50"):
        sd = prng.random_resnet_state(arch, prng.RESNET_WIDTHS, 10, 1)
        ours = build_resnet(arch, sd)
        ref = getattr(torchvision.models, arch)(num_classes=10)
        ref.load_state_dict({k: torch.as_tensor(v) for k, v in sd.items()}, strict=False)
        ref.eval()
        x = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            a, _ = forward(ours, x)
            b = ref(x)
        print(arch, float((a - b).abs().max()), float(b.abs().max()))


if __name__ == "__main__":
    self_check()
