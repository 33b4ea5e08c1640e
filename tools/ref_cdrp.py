#!/usr/bin/python3
"""Plain PyTorch reference of CDRP, Score-CDRP, path Score-CAM and the pathway
gradient (docs/methods.md#gated-network to #pathway-gradient): autograd and loops, one image at a time,
the oracle for host/methods/cdrp.c (tools/make_cdrp_goldens.py writes the
goldens the C tests compare against).

Every function takes a model from vgg_torch.build_vgg or resnet_torch.build_resnet and ONE normalised image
x [1,3,H,W] (or [3,H,W]); the model is converted to `dtype` in place
(nn.Module.to), so float32 and float64 runs of the same weights are possible,
and its parameters stop requiring gradients (no weight gradients are needed).
Gates are 1-D [n_gates], conv layers in network order (gate_nodes below).

CLI: `--random` runs one random VGG (tools/prng.py) end to end and prints the
numbers at_cdrp reports (an `--image` mode for real weights is not written yet):
  /usr/bin/python3 tools/ref_cdrp.py --random --steps 10 [--method cdrp] [--float32]
"""
import argparse
import collections
import dataclasses
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resnet_torch  # noqa: E402
import vgg_torch  # noqa: E402

MASK_BATCH = 32  # masked inputs per forward in the CIC passes (batching does not change a result)


# ---------------------------------------------------------------- helpers (docs/methods.md#notation-and-common-steps)

def upsample(a, h, w):
    """Up: bilinear to the input size, align_corners=False (docs/methods.md#conventions-where-papers-and-peers-disagree, "ours").
    Identity when the map already has the input size."""
    if a.shape[-2:] == (h, w):
        return a
    shape = a.shape
    out = F.interpolate(a.reshape(-1, 1, *shape[-2:]), size=(h, w), mode="bilinear", align_corners=False)
    return out.reshape(*shape[:-2], h, w)


def minmax(m):
    """s(M) = (M - min M) / (max M - min M) over the last two axes, 0 where max = min."""
    lo = m.amin(dim=(-2, -1), keepdim=True)
    hi = m.amax(dim=(-2, -1), keepdim=True)
    rng = hi - lo
    safe = torch.where(rng > 0, rng, torch.ones_like(rng))
    return torch.where(rng > 0, (m - lo) / safe, torch.zeros_like(m))


def flat_channels(a):
    """[C] bool: channels whose map is constant (dead ReLU channels, 1x1 maps)."""
    return a.amax(dim=(-2, -1)) == a.amin(dim=(-2, -1))


def _image(model, x, dtype):
    # no weight gradients: every backward here wants the gates or the input only (docs/methods.md#algorithm-1-optimising-the-gates)
    model.to(dtype).eval().requires_grad_(False)
    x = torch.as_tensor(x).to(dtype)
    return x if x.dim() == 4 else x[None]


def _net(model):
    return resnet_torch if isinstance(model, resnet_torch.GatedResNet) else vgg_torch


def gate_nodes(model):
    """([(node whose output the gates multiply, offset, channels)], n_gates): on VGG the
    conv's ReLU features.N, on ResNet its ReLU or its BN before the add."""
    if isinstance(model, resnet_torch.GatedResNet):
        nodes = resnet_torch.gate_nodes(model)
        return nodes, sum(c for _, _, c in nodes)
    layout, n = vgg_torch.gate_layout(model)
    return [(f"features.{i}", off, c) for i, off, c in layout], n


def _ones_gates(model, x):
    return torch.ones(gate_nodes(model)[1], dtype=x.dtype, device=x.device)


def masked_probs(model, x, masks, cls, gates=None):
    """p^c(f(X o mask_l; gates)) for each mask [L,H,W] (X the normalised input,
    the mask broadcast over colour channels: docs/methods.md#notation-and-common-steps "X o M")."""
    out = []
    for i in range(0, masks.shape[0], MASK_BATCH):
        m = masks[i:i + MASK_BATCH]
        g = None if gates is None else gates.reshape(1, -1).expand(m.shape[0], -1)
        logits, _ = _net(model).forward(model, x * m[:, None], g)
        out.append(torch.softmax(logits, dim=1)[:, cls])
    return torch.cat(out) if out else masks.new_zeros(0)


# ---------------------------------------------------------------- CIC scores (docs/methods.md#score-cdrp)

def cic_scores(model, x, cls, dtype=torch.float64):
    """α^c_{k,l} for every channel l of every conv layer k, on the ungated network.

    Returns (alpha [n_gates], flat [n_gates] bool, zero_score or None). The
    mask of a channel is s(Up(A^k_l)) of that layer's ReLU output, min-max
    AFTER upsampling; a flat channel's mask is all zero, so it scores f(X o 0),
    computed once per image (docs/methods.md#score-cdrp)."""
    x = _image(model, x, dtype)
    H, W = x.shape[-2:]
    layout, n_gates = gate_nodes(model)
    names = tuple(name for name, _, _ in layout)
    alpha = torch.zeros(n_gates, dtype=dtype, device=x.device)
    flat_all = torch.zeros(n_gates, dtype=torch.bool, device=x.device)
    zero_score = None
    with torch.no_grad():
        _, caps = _net(model).forward(model, x, None, names)
        for (i, off, C), name in zip(layout, names):
            a = caps[name][0]                                   # [C,h,w] ReLU output
            flat = flat_channels(a)
            live = (~flat).nonzero().flatten()
            masks = minmax(upsample(a[live], H, W))
            alpha[off + live] = masked_probs(model, x, masks, cls)
            if flat.any():
                if zero_score is None:
                    zero_score = masked_probs(model, x, x.new_zeros(1, H, W), cls)[0]
                alpha[off + flat.nonzero().flatten()] = zero_score
            flat_all[off:off + C] = flat
    return alpha, flat_all, (None if zero_score is None else float(zero_score))


# ---------------------------------------------------------------- CDRP / Score-CDRP (docs/methods.md#algorithm-1-optimising-the-gates)

@dataclasses.dataclass
class CdrpOptions:
    """The options of host/methods/cdrp.h (at_cdrp_options), same meaning."""
    score_weighted: bool = False     # Score-CDRP (Eq. 4) vs CDRP
    lr: float = 0.01
    momentum: float = 0.9
    gamma: float = 0.01
    clamp_max: float = 10.0
    iterations: int = 100            # T
    target: str = "soft"             # soft: -sum p_j(x) log q_j; hard: -log q_c
    l1: str = "sum"                  # sum: gamma * sum w|λ|; mean: gamma * mean w|λ|
    alpha_weight: str = "alpha"      # alpha | inverse (1 - α) | none (= CDRP); Score-CDRP only
    keep: str = "best"               # best | last-below-initial (the seed's literal listing)


PRESETS = {  # docs/methods.md#algorithm-1-optimising-the-gates
    "zhu2024": dict(lr=0.01, momentum=0.9, gamma=0.01, clamp_max=10.0, iterations=100),
    "wang2018": dict(lr=0.1, momentum=0.9, gamma=0.05, clamp_max=5.0, iterations=30),
}


def preset(name, score_weighted=False, **over):
    if name not in PRESETS:
        raise ValueError(f"preset {name!r} is not zhu2024 or wang2018")
    o = CdrpOptions(score_weighted=score_weighted, **PRESETS[name])
    return dataclasses.replace(o, **over)


CdrpResult = collections.namedtuple(
    "CdrpResult", ["gates", "kept_iteration", "final_loss", "path_class", "path_prob", "initial_loss", "losses",
                   "cls", "orig_prob", "alpha", "step_classes", "zero_score", "flat", "class_gaps", "keep_gaps"])
CdrpResult.__doc__ = """gates: v [n_gates]; kept_iteration: t whose Λ_t was kept (0 = all ones);
final_loss / path_class / path_prob: objective, argmax and p^c at v; initial_loss: objective at Λ = 1;
losses [T+1] and step_classes [T+1]: objective and argmax at every Λ_t, t = 0..T; cls, orig_prob:
c and p^c(x) of the original network; alpha [n_gates] or None: CIC scores (Score-CDRP); zero_score,
flat: the X o 0 score and the flat-channel flags of the CIC pass. Decision margins, to judge whether
another float implementation must take the same decisions: class_gaps [T+1] = top-1 minus top-2 logit
at each Λ_t; keep_gaps [T] = loss_t minus the threshold it was compared with (None where j != c)."""


def l1_weights(model, x, cls, o, alpha=None):
    """w of the L1 term (docs/methods.md#score-cdrp): α, 1 - α or 1; alpha: precomputed CIC
    scores (then flat and zero_score are not known: None)."""
    ones = _ones_gates(model, x)
    if not o.score_weighted or o.alpha_weight == "none":
        return ones, None, None, None
    flat = zero_score = None
    if alpha is None:
        alpha, flat, zero_score = cic_scores(model, x, cls, x.dtype)
    if o.alpha_weight == "alpha":
        return alpha, alpha, flat, zero_score
    if o.alpha_weight == "inverse":
        return 1 - alpha, alpha, flat, zero_score
    raise ValueError(f"alpha_weight {o.alpha_weight!r} is not alpha, inverse or none")


def objective(model, x, lam, w, target, o):
    """Eq. 4: CE(target, softmax f(x; Λ)) + γ Σ w|λ| (or γ mean w|λ|). Returns
    (loss, logits[0])."""
    logits, _ = _net(model).forward(model, x, lam[None])
    ce = -(target * torch.log_softmax(logits[0], dim=0)).sum()
    reg = (w * lam.abs()).sum() if o.l1 == "sum" else (w * lam.abs()).mean()
    return ce + o.gamma * reg, logits[0]


def cdrp(model, x, options, dtype=torch.float64, alpha=None):
    """Algorithm 1 (docs/methods.md#algorithm-1-optimising-the-gates) for one image; CDRP when options.score_weighted
    is False (α ≡ 1). T steps cost T+1 forwards: the forward that evaluates
    Λ_t is the one step t+1 differentiates, as host/methods/cdrp.c does.
    alpha: precomputed CIC scores for Score-CDRP (skips step 2)."""
    o = options
    if o.target not in ("soft", "hard") or o.l1 not in ("sum", "mean") or \
            o.keep not in ("best", "last-below-initial"):
        raise ValueError(f"bad options {o}")
    x = _image(model, x, dtype)
    # step 1: Λ = 1, c = argmax f(x) of the ungated network
    with torch.no_grad():
        logits0, _ = _net(model).forward(model, x)
        p0 = torch.softmax(logits0[0], dim=0)
    cls = int(torch.argmax(logits0[0]))
    target = p0 if o.target == "soft" else F.one_hot(torch.tensor(cls), p0.numel()).to(p0)
    # step 2: the L1 weights (CIC scores on the ungated network for Score-CDRP)
    w, alpha, flat, zero_score = l1_weights(model, x, cls, o, alpha)
    # step 3: minimum = loss(Λ = 1), v = Λ
    lam = _ones_gates(model, x).requires_grad_(True)
    sgd = torch.optim.SGD([lam], lr=o.lr, momentum=o.momentum, weight_decay=0)
    loss, logits = objective(model, x, lam, w, target, o)
    initial = minimum = float(loss)
    v, kept, final = lam.detach().clone(), 0, initial
    path_class = int(torch.argmax(logits))
    path_prob = float(torch.softmax(logits.detach(), 0)[cls])
    losses, classes, class_gaps, keep_gaps = [initial], [path_class], [top2_gap(logits)], []
    # step 4: T times: SGD step on the objective, clamp to [0, clamp_max], evaluate at the new Λ
    for t in range(1, o.iterations + 1):
        sgd.zero_grad()
        loss.backward()
        sgd.step()
        with torch.no_grad():
            lam.clamp_(0.0, o.clamp_max)
        loss, logits = objective(model, x, lam, w, target, o)
        value, j = float(loss), int(torch.argmax(logits))
        losses.append(value)
        classes.append(j)
        class_gaps.append(top2_gap(logits))
        # the seed's literal listing (last-below-initial) never updates `minimum`
        threshold = minimum if o.keep == "best" else initial
        keep_gaps.append(value - threshold if j == cls else None)
        take = j == cls and value <= threshold
        if take:
            if o.keep == "best":
                minimum = value
            v, kept, final = lam.detach().clone(), t, value
            path_class, path_prob = j, float(torch.softmax(logits.detach(), 0)[cls])
    return CdrpResult(v, kept, final, path_class, path_prob, initial, losses, cls, float(p0[cls]), alpha, classes,
                      zero_score, flat, class_gaps, keep_gaps)


def top2_gap(logits):
    top = torch.topk(logits.detach(), 2).values
    return float(top[0] - top[1])


# ---------------------------------------------------------------- pathway gradient (docs/methods.md#pathway-gradient)

def prune_gates(model, gates, rate, global_=False, keep_values=False):
    """Per conv layer (or over all gates with global_), the floor(rate * C)
    smallest gates become 0 (ties by channel index, so gates clamped to 0 go
    first), the others 1 (or keep their value)."""
    if not 0 <= rate <= 1:
        raise ValueError(f"prune rate {rate} is outside [0, 1]")
    layout, n_gates = gate_nodes(model)
    g = [float(v) for v in gates]
    out = list(g) if keep_values else [1.0] * n_gates
    ranges = [(0, n_gates)] if global_ else [(off, C) for _, off, C in layout]
    for off, count in ranges:
        order = sorted(range(off, off + count), key=lambda i: (g[i], i))
        cut = math.floor(rate * count + 1e-9)  # rate*count of 0.5*58 is exactly 29
        for i in order[:cut]:
            out[i] = 0.0
    return torch.tensor(out, dtype=torch.as_tensor(gates).dtype)


def pathway_grad(model, x, gates, cls, rate, global_=False, keep_values=False, dtype=torch.float64):
    """Vanilla saliency of the pruned network f(x; prune(v)) for class c (the
    original prediction): max over colour channels of |∂y^c/∂x|, min-max.
    Returns (map [H,W], pruned gates, predicted class of the pruned network)."""
    x = _image(model, x, dtype).clone().requires_grad_(True)
    pruned = prune_gates(model, gates, rate, global_, keep_values).to(x)
    logits, _ = _net(model).forward(model, x, pruned[None])
    (g,) = torch.autograd.grad(logits[0, cls], x)
    return minmax(g[0].abs().amax(dim=0)).detach(), pruned, int(torch.argmax(logits[0]))


# ---------------------------------------------------------------- path Score-CAM (docs/methods.md#path-score-cam)

def path_scorecam(model, x, gates, cls, layer, dtype=torch.float64):
    """Score-CAM with the authors' conventions on the gated network f(x; v):
    masks s(Up(A)) from the gated network's output of `layer` (every earlier
    layer gated too), scores p^c(f(X o mask_l; v)), flat channels weight 0
    (skipped, as the authors' code), L = ReLU(Σ α_l A_l) -> Up -> min-max.
    Returns dict(map [H,W], weights [C], flat [C], cam [h,w], path_class)."""
    x = _image(model, x, dtype)
    H, W = x.shape[-2:]
    gates = torch.as_tensor(gates).to(x)
    with torch.no_grad():
        logits, caps = _net(model).forward(model, x, gates[None], (layer,))
        a = caps[layer][0]                                       # λ·ReLU(z), [C,h,w]
        flat = flat_channels(a)
        live = (~flat).nonzero().flatten()
        weights = torch.zeros(a.shape[0], dtype=dtype, device=x.device)
        weights[live] = masked_probs(model, x, minmax(upsample(a[live], H, W)), cls, gates)
        cam = (weights[:, None, None] * a).sum(0)
        m = minmax(upsample(F.relu(cam), H, W))
    return dict(map=m, weights=weights, flat=flat, cam=cam, path_class=int(torch.argmax(logits[0])))


# ---------------------------------------------------------------- CLI

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--random", action="store_true", help="random vgg11 (tools/prng.py) and a PRNG input")
    ap.add_argument("--method", choices=("cdrp", "score-cdrp"), default="score-cdrp")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="zhu2024")
    ap.add_argument("--steps", type=int, default=None, help="T (default: the preset's)")
    ap.add_argument("--float32", action="store_true")
    args = ap.parse_args()
    if not args.random:
        ap.error("only --random is implemented")
    import prng
    seed = 20241
    state = prng.random_vgg_state("vgg11", [4, 6, 8, 8, 8, 8, 8, 8], [16, 12], 8, 1, seed)
    model = vgg_torch.build_vgg("vgg11", state, 1)
    x = torch.from_numpy(prng.fill("input", seed, (1, 3, 32, 32), 2.0))
    over = {} if args.steps is None else {"iterations": args.steps}
    o = preset(args.preset, args.method == "score-cdrp", **over)
    r = cdrp(model, x, o, torch.float32 if args.float32 else torch.float64)
    print(f"class {r.cls} p {r.orig_prob:.4f}; path class {r.path_class} p {r.path_prob:.4f}; "
          f"loss {r.initial_loss:.5f} -> {r.final_loss:.5f} (kept step {r.kept_iteration}); "
          f"gates min {float(r.gates.min()):.4f} max {float(r.gates.max()):.4f}")


if __name__ == "__main__":
    main()
