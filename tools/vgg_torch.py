"""A torchvision-layout VGG with channel gates, built from a state dict: the
PyTorch oracle for the engine (docs/methods.md#models-and-preprocessing, #gated-network). Module names match torchvision
(features.N, avgpool, classifier.N); widths come from the tensor shapes."""
import torch
import torch.nn as nn

from prng import BLOCKS


def build_vgg(arch, state, avgpool):
    bn = arch.endswith("_bn")
    blocks = BLOCKS[arch[:-3] if bn else arch]
    layers, module, ch = [], 0, state["features.0.weight"].shape[1]
    for nb in blocks:
        for _ in range(nb):
            out = state[f"features.{module}.weight"].shape[0]
            layers.append(nn.Conv2d(ch, out, 3, padding=1))
            module += 1
            if bn:
                layers.append(nn.BatchNorm2d(out))
                module += 1
            layers.append(nn.ReLU(inplace=False))
            module += 1
            ch = out
        layers.append(nn.MaxPool2d(2, 2))
        module += 1
    model = nn.Module()
    model.features = nn.Sequential(*layers)
    model.avgpool = nn.AdaptiveAvgPool2d(avgpool)
    h1 = state["classifier.0.weight"].shape[0]
    h2 = state["classifier.3.weight"].shape[0]
    nc = state["classifier.6.weight"].shape[0]
    model.classifier = nn.Sequential(
        nn.Linear(ch * avgpool * avgpool, h1), nn.ReLU(False), nn.Dropout(),
        nn.Linear(h1, h2), nn.ReLU(False), nn.Dropout(), nn.Linear(h2, nc))
    return load_state(model, state)


def load_state(model, state):
    """model with every tensor of state (numpy or torch; BN's
    num_batches_tracked may be absent), in eval mode."""
    sd = {k: torch.as_tensor(v) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    model.eval()
    return model


def gate_layout(model):
    """(module index of each conv's ReLU, gate offset, channels) in network order."""
    out, off, last_c = [], 0, None
    for i, m in enumerate(model.features):
        if isinstance(m, nn.Conv2d):
            last_c = m.out_channels
        if isinstance(m, nn.ReLU):
            out.append((i, off, last_c))
            off += last_c
    return out, off


def forward(model, x, gates=None, capture=()):
    """Gated forward (gates [n, n_gates] or None); returns logits and a dict
    name -> output tensor for the module names in capture."""
    layout, _ = gate_layout(model)
    gate_at = {i: (off, c) for i, off, c in layout}
    caps = {}
    n = x.shape[0]
    for i, m in enumerate(model.features):
        x = m(x)
        if gates is not None and i in gate_at:
            off, c = gate_at[i]
            x = x * gates[:, off:off + c].reshape(n, c, 1, 1)
        name = f"features.{i}"
        if name in capture:
            x.retain_grad() if x.requires_grad else None
            caps[name] = x
    x = model.avgpool(x)
    if "avgpool" in capture:
        caps["avgpool"] = x
    x = torch.flatten(x, 1)
    for i, m in enumerate(model.classifier):
        x = m(x)
        name = f"classifier.{i}"
        if name in capture:
            caps[name] = x
    return x, caps
