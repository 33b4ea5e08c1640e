#!/usr/bin/python3
"""Goldens for the CPU backend: random-weight VGG and ResNet models (tools/prng.py, the
twin of host/model/random_model.c) run through PyTorch; writes one folder per case
with meta.json and .npy outputs. The C tests rebuild the same models and
inputs from the same PRNG and compare. Run: /usr/bin/python3 tools/make_goldens.py --out tests/goldens
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prng  # noqa: E402
import resnet_torch  # noqa: E402
import vgg_torch  # noqa: E402

# The C tests' tolerance relative to a tensor's largest magnitude (tests/test_golden.c).
GRAD_RTOL = 1e-3

# name, arch, widths (None = standard), hidden, classes, h, w, avgpool, batch, capture layer, full grads
CASES = [
    ("vgg11_tiny", "vgg11", [4, 6, 8, 8, 8, 8, 8, 8], [16, 12], 5, 32, 32, 1, 2, "features.18", True),
    ("vgg16_bn_small", "vgg16_bn", [6, 6, 8, 8, 12, 12, 12, 12, 12, 12, 12, 12, 12], [20, 20], 7, 64, 48, 7, 2,
     "features.42", True),
    ("vgg13_avg3", "vgg13", [3, 3, 4, 4, 5, 5, 6, 6, 6, 6], [10, 10], 4, 64, 64, 3, 3, "features.23", True),
    ("vgg19_small", "vgg19", [4] * 16, [8, 8], 3, 40, 56, 2, 1, "features.34", True),
    ("vgg16_mini_width", "vgg16", [8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 64], [256, 256], 10,
     128, 128, 4, 2, "features.29", True),
    ("vgg16_full", "vgg16", None, [4096, 4096], 1000, 224, 224, 7, 1, "features.29", False),
]
# ResNets: widths = stem, then each stage's planes (None = torchvision's); the
# 224 px cases keep every gate gradient but only every `sample`-th element of
# the input and layer4 gradients, so the committed files stay small.
# name, arch, widths, classes, h, w, batch, capture, sample, input-gradient rtol
RESNET_CASES = [
    ("resnet18_tiny", "resnet18", [4, 4, 6, 8, 8], 5, 48, 40, 2, "layer4", 1, GRAD_RTOL),
    ("resnet50_small", "resnet50", [8, 2, 3, 4, 4], 6, 64, 56, 1, "layer3", 1, GRAD_RTOL),
    ("resnet18_full", "resnet18", None, 1000, 224, 224, 1, "layer4", 29, GRAD_RTOL),
    ("resnet50_full", "resnet50", None, 1000, 224, 224, 1, "layer4", 29, GRAD_RTOL),
]
SEED = 20241
RESNET_GATE_SCALE = 0.25



def compute(model, x, gates, dlogits, cap, dtype, net=vgg_torch):
    """Ungated logits and capture, then gated logits and gradients, in dtype."""
    model = model.to(dtype)
    x, gates, dlogits = x.to(dtype), gates.to(dtype), dlogits.to(dtype)
    out = {}
    with torch.no_grad():
        logits, caps = net.forward(model, x, None, (cap,))
    out["logits"], out["act"] = logits, caps[cap]
    xg = x.clone().requires_grad_(True)
    g = gates.clone().requires_grad_(True)
    glogits, gcaps = net.forward(model, xg, g, (cap,))
    gcaps[cap].retain_grad()
    (glogits * dlogits).sum().backward()
    out.update(gated_logits=glogits.detach(), grad_gates=g.grad, grad_input=xg.grad, grad_act=gcaps[cap].grad)
    return {k: v.double().numpy() for k, v in out.items()}


def run_case(out_dir, case):
    """Goldens are computed in float64; the float32 PyTorch run must agree with
    them within the C tests' tolerance, otherwise the case is ill-conditioned
    (near-tied max-pool windows flip under rounding) and is rejected."""
    name, arch, widths, hidden, nc, h, w, avgpool, n, cap, full = case
    if widths is None:
        widths = prng.standard_widths(arch)
    state = prng.random_vgg_state(arch, widths, hidden, nc, avgpool, SEED)
    model = vgg_torch.build_vgg(arch, state, avgpool)
    _, n_gates = vgg_torch.gate_layout(model)
    x = torch.from_numpy(prng.fill("input", SEED, (n, 3, h, w), 2.0))
    gates = torch.from_numpy(prng.fill("gates", SEED, (n, n_gates), 1.0, 1.0))
    dlogits = torch.from_numpy(prng.fill("dlogits", SEED, (n, nc), 1.0))
    ref = compute(model, x, gates, dlogits, cap, torch.float64)
    f32 = compute(model, x, gates, dlogits, cap, torch.float32)
    # Deep random nets have near-tied max-pool windows somewhere; the reduced
    # cases check the gates of the last block only, whose gradients cross one pool.
    layout, _ = vgg_torch.gate_layout(model)
    gates_from = 0 if full else layout[-3][1]
    ref["grad_gates"] = ref["grad_gates"][:, gates_from:]
    f32["grad_gates"] = f32["grad_gates"][:, gates_from:]
    keep = ["logits", "gated_logits", "grad_gates"] + (["act", "grad_input", "grad_act"] if full else [])
    for k in keep:
        scale = np.abs(ref[k]).max()
        err = np.abs(ref[k] - f32[k]).max()
        if err > GRAD_RTOL * scale:
            raise SystemExit(f"{name}: {k} is ill-conditioned (float32 vs float64 differ by {err:.3g} "
                             f"of {scale:.3g}); change the case")
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    for k in keep:
        np.save(os.path.join(d, k + ".npy"), ref[k].astype(np.float32))
    logits = ref["logits"]
    meta = dict(arch=arch, widths=widths, hidden=hidden, classes=nc, h=h, w=w, avgpool=avgpool,
                batch=n, seed=SEED, capture=cap, full=full, n_gates=n_gates, gates_from=gates_from,
                torch=torch.__version__)
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{name}: logits[0,:3] = {logits[0, :3].tolist()}")


def run_resnet_case(out_dir, case):
    """As run_case, for a ResNet: logits, the capture, the gated logits and
    the gradients to every gate, the capture and the input."""
    name, arch, widths, nc, h, w, n, cap, sample, gin_rtol = case
    widths = widths or prng.RESNET_WIDTHS
    state = prng.random_resnet_state(arch, widths, nc, SEED)
    model = resnet_torch.build_resnet(arch, state)
    _, n_gates = resnet_torch.gate_layout(model)
    x = torch.from_numpy(prng.fill("input", SEED, (n, 3, h, w), 2.0))
    # gates in [0.75, 1.25]: [0, 2] over 53 convs amplifies the logits 8x and the
    # input gradient's float32 rounding with them
    gates = torch.from_numpy(prng.fill("gates", SEED, (n, n_gates), RESNET_GATE_SCALE, 1.0))
    dlogits = torch.from_numpy(prng.fill("dlogits", SEED, (n, nc), 1.0))
    ref = compute(model, x, gates, dlogits, cap, torch.float64, resnet_torch)
    f32 = compute(model, x, gates, dlogits, cap, torch.float32, resnet_torch)
    keep = ["logits", "gated_logits", "grad_gates", "act", "grad_input", "grad_act"]
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    for k in keep:
        scale = np.abs(ref[k]).max()
        err = np.abs(ref[k] - f32[k]).max()
        if err > (gin_rtol if k == "grad_input" else GRAD_RTOL) * scale:
            raise SystemExit(f"{name}: {k} is ill-conditioned (float32 vs float64 differ by {err:.3g} "
                             f"of {scale:.3g}); change the case")
        v = ref[k].reshape(-1)
        if k in ("act", "grad_input", "grad_act"):
            v = v[::sample]
        np.save(os.path.join(d, k + ".npy"), v.astype(np.float32))
    meta = dict(arch=arch, widths=widths, classes=nc, h=h, w=w, batch=n, seed=SEED, capture=cap, full=True,
                n_gates=n_gates, gates_from=0, sample=sample, gate_scale=RESNET_GATE_SCALE, grad_input_rtol=gin_rtol, torch=torch.__version__)
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{name}: logits[0,:3] = {ref['logits'][0, :3].tolist()}, {n_gates} gates")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="tests/goldens")
    ap.add_argument("--only", default=None, help="comma-separated case names")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    only = set(args.only.split(",")) if args.only else None
    for case in CASES:
        if only and case[0] not in only:
            continue
        run_case(args.out, case)
    for case in RESNET_CASES:
        if only and case[0] not in only:
            continue
        run_resnet_case(args.out, case)
    with open(os.path.join(args.out, "cases.txt"), "w") as f:
        for case in CASES + RESNET_CASES:
            f.write(case[0] + "\n")


if __name__ == "__main__":
    main()
