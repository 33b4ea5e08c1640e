#!/usr/bin/python3
"""Goldens for the relevance methods (docs/methods.md#excitation-backprop,
#lrp, #fafrp), made by the peers themselves on small random VGGs
(tools/prng.py, the twin of host/model/random_model.c), in float64:
  eb, c-eb   TorchRay 1.0 excitation_backprop / contrastive_excitation_backprop
  lrp, clrp  zennit 0.5.1 (EpsilonGammaBox, EpsilonAlpha2Beta1, single rules
             through a LayerMapComposite), relevance started at the logit
  fafrp      the literal forward propagation of seed 004's Algorithm 1: every
             unit carries an input-sized map (one slice per input pixel),
             propagated by each layer's own op with the forward's ReLU and
             max-pool pattern fixed
One folder per case under tests/goldens/relevance/ with
  meta.json  the model spec (as tools/make_method_goldens.py) plus method and
             options, class, predicted, logit
  raw.npy    float32, the signed signal before the final stage: the channel
             sum of P at the read-out (eb; c-eb after TorchRay's max(0, .)),
             of the input relevance (lrp, clrp), V (fafrp)
Also checks, and refuses to write a case otherwise: EB's signal sums to 1 (VGG),
c-EB equals max(0, MWP(target) - MWP(dual)) from the contrast layer down,
FAFRP's V sums to the logit, and float32 agrees with float64.
Run: PYTHONPATH=.peers /usr/bin/python3 tools/make_relevance_goldens.py [--out DIR] [--only a,b]
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_cases  # noqa: E402
import resnet_torch  # noqa: E402

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# name, model, method, options (eb_layer, contrast_layer, lrp_rule, lrp_alpha), class (None = predicted)
CASES = [
    ("eb_mini16", "vgg16_mini", "eb", {}, None),
    ("eb_vgg11_pool3", "vgg11_32", "eb", {"eb_layer": "features.10"}, None),
    ("eb_vgg11_conv_class3", "vgg11_32", "eb", {"eb_layer": "features.12"}, 3),
    ("ceb_mini16", "vgg16_mini", "c-eb", {}, None),
    ("ceb_vgg11_class5", "vgg11_32", "c-eb", {"eb_layer": "features.10"}, 5),
    ("lrp_egb_mini16", "vgg16_mini", "lrp", {}, None),
    ("lrp_ea2b1_mini16", "vgg16_mini", "lrp", {"lrp_rule": "epsilon-alpha2-beta1"}, None),
    ("lrp_egb_vgg11", "vgg11_32p2", "lrp", {}, None),
    ("lrp_ea2b1_vgg11_class2", "vgg11_32p2", "lrp", {"lrp_rule": "epsilon-alpha2-beta1"}, 2),
    ("lrp_epsilon_vgg11", "vgg11_32p2", "lrp", {"lrp_rule": "epsilon"}, None),
    ("lrp_gamma_vgg11", "vgg11_32p2", "lrp", {"lrp_rule": "gamma"}, None),
    ("lrp_alphabeta_vgg11", "vgg11_32p2", "lrp", {"lrp_rule": "alpha-beta"}, None),
    ("lrp_alpha3_vgg11", "vgg11_32p2", "lrp", {"lrp_rule": "alpha-beta", "lrp_alpha": 3.0}, None),
    ("clrp_egb_mini16", "vgg16_mini", "clrp", {}, None),
    ("clrp_epsilon_vgg11", "vgg11_32p2", "clrp", {"lrp_rule": "epsilon"}, 4),
    ("eb_resnet18", "resnet18_64", "eb", {}, None),
    ("eb_resnet50_class2", "resnet50_64", "eb", {}, 2),
    ("ceb_resnet18", "resnet18_64", "c-eb", {}, None),
    ("lrp_egb_resnet18", "resnet18_64", "lrp", {}, None),
    ("lrp_ea2b1_resnet50", "resnet50_64", "lrp", {"lrp_rule": "epsilon-alpha2-beta1"}, None),
    ("fafrp_vgg11", "vgg11_32", "fafrp", {}, None),
    ("fafrp_vgg11_class6", "vgg11_32p2", "fafrp", {}, 6),
    ("fafrp_resnet18", "resnet18_32", "fafrp", {}, None),
    ("fafrp_resnet18_class4", "resnet18_32", "fafrp", {}, 4),
]
# float32 vs float64 raw signals, relative to the largest magnitude: beyond
# this a case sits near a ReLU or max-pool flip and is refused.
F32_RTOL = 1e-3


def build(model_name, dtype):
    """The case's model with its forward calling torchvision's modules, so
    that the peers' patches apply."""
    model, x = golden_cases.build(model_name, dtype)
    if hasattr(model, "layer4"):
        return resnet_torch.use_module_forward(model), x

    def forward(x):
        x = model.avgpool(model.features(x))
        return model.classifier(torch.flatten(x, 1))
    model.forward = forward
    return model, x


def bounds(x):
    mean = torch.tensor(MEAN, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=x.dtype).view(1, 3, 1, 1)
    return ((0 - mean) / std).expand_as(x).clone(), ((1 - mean) / std).expand_as(x).clone()


def zennit_lrp(model, x, cls, rule, alpha, contrastive, resnet):
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonAlpha2Beta1, EpsilonGammaBox, LayerMapComposite
    from zennit.rules import AlphaBeta, Epsilon, Gamma, Norm, Pass
    from zennit.types import Activation, AvgPool, Linear
    from zennit.torchvision import ResNetCanonizer
    canon = [ResNetCanonizer()] if resnet else None  # BN merged into the conv, the add a Sum (Norm rule)
    if rule == "epsilon-gamma-box":
        lo, hi = bounds(x)
        comp = EpsilonGammaBox(low=lo, high=hi, canonizers=canon)
    elif rule == "epsilon-alpha2-beta1":
        comp = EpsilonAlpha2Beta1(canonizers=canon)
    else:
        single = {"epsilon": Epsilon(), "gamma": Gamma(gamma=0.25),
                  "alpha-beta": AlphaBeta(alpha=alpha, beta=alpha - 1)}[rule]
        comp = LayerMapComposite(layer_map=[(Activation, Pass()), (AvgPool, Norm()), (Linear, single)],
                                 canonizers=canon)
    xg = x.clone().requires_grad_(True)
    with torch.no_grad():
        y = model(x)
    start = torch.zeros_like(y)
    t = y[0, cls]
    if contrastive:  # docs/methods.md#lrp: the others start at -y/(N-1)
        start[:] = -t / (y.shape[1] - 1)
    start[0, cls] = t
    with Gradient(model=model, composite=comp) as attributor:
        _, rel = attributor(xg, start)
    return rel[0].sum(0)


def torchray_eb(model, x, cls, layer, contrast):
    from torchray.attribution import excitation_backprop as ebm
    from torchray.attribution.excitation_backprop import contrastive_excitation_backprop, excitation_backprop
    if isinstance(model, resnet_torch.GatedResNet) and not hasattr(model, "eb_skips"):
        # TorchRay's own update_resnet (EltwiseSum adds), which asserts a torchvision ResNet
        saved, ebm.ResNet = ebm.ResNet, resnet_torch.GatedResNet
        try:
            ebm.update_resnet(model)
        finally:
            ebm.ResNet = saved
        model.eb_skips = True
    if contrast is None:
        s = excitation_backprop(model, x, cls, saliency_layer=layer)
    else:
        s = contrastive_excitation_backprop(model, x, cls, saliency_layer=layer, contrast_layer=contrast,
                                            classifier_layer=CLASSIFIER(model))
    return s[0, 0]


def CLASSIFIER(model):
    return "fc" if isinstance(model, resnet_torch.GatedResNet) else "classifier.6"


def eb_signal_from(model, x, cls, layer, contrast, negate):
    """MWP at layer from the contrast layer's P with the target (or its dual,
    classifier negated), by TorchRay's own context: c-EB's linearity check."""
    from torchray.attribution.common import Probe
    from torchray.attribution.excitation_backprop import ExcitationBackpropContext
    from torchray.attribution.common import get_module
    with ExcitationBackpropContext():
        pc = Probe(get_module(model, contrast), target="output")
        ps = Probe(get_module(model, layer), target="output")
        y = model(x)
        g = torch.zeros_like(y)
        g[0, cls] = 1
        w = get_module(model, CLASSIFIER(model)).weight
        if negate:
            w.data.neg_()
        try:
            y.backward(g)
        finally:
            if negate:
                w.data.neg_()
        out = ps.data[0].grad.sum(1)[0].clone(), pc.data[0].grad.clone()
        pc.remove(), ps.remove()
    return out


def fafrp_literal(model, x, cls):
    """Seed 004 Algorithm 1, literally: V holds, per unit, one value per input
    pixel p (the slice V[p]); the first conv sees x restricted to p, every
    layer applies its op to each slice plus b/N, and |sgn(Out)| of the
    ordinary forward masks each unit."""
    _, C, H, W = x.shape
    N = H * W
    eye = torch.eye(N, dtype=x.dtype).view(N, 1, H, W)
    V = x * eye          # [N][C][H][W]: pixel p's slice of the input
    a = x
    def layer(mod, V, a):
        if isinstance(mod, torch.nn.Conv2d):
            return (F.conv2d(V, mod.weight, None, mod.stride, mod.padding) + mod.bias.view(1, -1, 1, 1) / N), mod(a)
        if isinstance(mod, torch.nn.Linear):
            return V @ mod.weight.t() + mod.bias / N, mod(a)
        if isinstance(mod, torch.nn.ReLU):
            out = mod(a)
            return V * (out != 0).to(V.dtype), out
        if isinstance(mod, torch.nn.MaxPool2d):
            out, idx = F.max_pool2d(a, mod.kernel_size, mod.stride, return_indices=True)
            flat = V.flatten(2)
            return flat.gather(2, idx.flatten(2).expand(V.shape[0], -1, -1)).view(V.shape[0], *out.shape[1:]), out
        if isinstance(mod, torch.nn.AdaptiveAvgPool2d):
            return mod(V), mod(a)
        if isinstance(mod, torch.nn.Dropout):
            return V, a
        raise ValueError(type(mod))
    with torch.no_grad():
        for mod in model.features:
            V, a = layer(mod, V, a)
        V, a = layer(model.avgpool, V, a)
        V, a = V.flatten(1), a.flatten(1)
        for mod in model.classifier:
            V, a = layer(mod, V, a)
    return V[:, cls].view(H, W), a[0, cls]


def fafrp_literal_resnet(model, x, cls):
    """Algorithm 1 on a ResNet (tools/resnet_torch.py's walk): convs carry no
    bias, each BN is the affine map V*s + t/N (its shift shared out as a
    bias), a residual add sums the two operands' slices, the padded max-pool
    gathers the winners' slices."""
    _, C, H, W = x.shape
    N = H * W
    V = x * torch.eye(N, dtype=x.dtype).view(N, 1, H, W)

    def bn(mod, V, a):
        s = mod.weight / torch.sqrt(mod.running_var + mod.eps)
        t = mod.bias - mod.running_mean * s
        return V * s.view(1, -1, 1, 1) + t.view(1, -1, 1, 1) / N, mod(a)

    def conv(mod, V, a):
        return F.conv2d(V, mod.weight, None, mod.stride, mod.padding), mod(a)

    def relu(V, a):
        out = torch.relu(a)
        return V * (out != 0).to(V.dtype), out

    with torch.no_grad():
        V, a = relu(*bn(model.bn1, *conv(model.conv1, V, x)))
        mp = model.maxpool
        a2, idx = F.max_pool2d(a, mp.kernel_size, mp.stride, mp.padding, return_indices=True)
        V = V.flatten(2).gather(2, idx.flatten(2).expand(V.shape[0], -1, -1)).view(V.shape[0], *a2.shape[1:])
        a = a2
        for s in range(1, 5):
            for blk in getattr(model, f"layer{s}"):
                nconv = 3 if hasattr(blk, "conv3") else 2
                Vy, y = V, a
                for q in range(1, nconv + 1):
                    Vy, y = bn(getattr(blk, f"bn{q}"), *conv(getattr(blk, f"conv{q}"), Vy, y))
                    if q < nconv:
                        Vy, y = relu(Vy, y)
                Vi, i = V, a
                if blk.downsample is not None:
                    Vi, i = bn(blk.downsample[1], *conv(blk.downsample[0], V, a))
                V, a = relu(Vy + Vi, y + i)
        V, a = V.mean(dim=(2, 3)), a.mean(dim=(2, 3))
        V, a = V @ model.fc.weight.t() + model.fc.bias / N, model.fc(a)
    return V[:, cls].view(H, W), a[0, cls]


def compute(case, dtype):
    name, model_name, method, opts, cls = case
    model, x = build(model_name, dtype)
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        y = model(x)
    predicted = int(y[0].argmax())
    c = predicted if cls is None else cls
    checks = {}
    resnet = model_name.startswith("resnet")
    if method in ("eb", "c-eb"):
        layer = opts.get("eb_layer", "layer3" if resnet else "features.23")
        if method == "eb":
            raw = torchray_eb(model, x, c, layer, None)
            checks["eb_sum"] = float(raw.sum())
        else:
            contrast = opts.get("contrast_layer", "avgpool" if resnet else "classifier.4")
            raw = torchray_eb(model, x, c, layer, contrast)
            mp, _ = eb_signal_from(model, x, c, layer, contrast, False)
            mm, _ = eb_signal_from(model, x, c, layer, contrast, True)
            checks["ceb_vs_difference"] = float((raw - (mp - mm).clamp(min=0)).abs().max() / raw.abs().max())
    elif method in ("lrp", "clrp"):
        raw = zennit_lrp(model, x, c, opts.get("lrp_rule", "epsilon-gamma-box"), opts.get("lrp_alpha", 2.0),
                         method == "clrp", resnet)
    else:
        raw, logit = (fafrp_literal_resnet if resnet else fafrp_literal)(model, x, c)
        checks["fafrp_sum_minus_logit"] = float(raw.sum() - logit)
        checks["logit"] = float(logit)
    return raw.detach().double().numpy(), predicted, c, float(y[0, c]), checks


def run_case(out_dir, case):
    name, model_name, method, opts, cls = case
    r64, pred, c, logit, checks = compute(case, torch.float64)
    r32, pred32, _, _, _ = compute(case, torch.float32)
    scale = np.abs(r64).max()
    err = np.abs(r64 - r32).max() / scale
    if pred32 != pred or err > F32_RTOL:
        raise SystemExit(f"{name}: ill-conditioned (float32 vs float64 {err:.3g} of scale, predicted {pred32}/{pred})")
    if not (r64 > 0).any():
        raise SystemExit(f"{name}: no positive relevance; pick another case")
    # on a ResNet an add can split a signal into parts of both signs, and a
    # zero normaliser below then drops a negative part: the sum leaves 1
    if "eb_sum" in checks and abs(checks["eb_sum"] - 1) > 1e-9 and not model_name.startswith("resnet"):
        raise SystemExit(f"{name}: EB's signal sums to {checks['eb_sum']}, not 1")
    if "ceb_vs_difference" in checks and checks["ceb_vs_difference"] > 1e-9:
        raise SystemExit(f"{name}: c-EB differs from MWP(target) - MWP(dual) by {checks['ceb_vs_difference']:.3g}")
    if "fafrp_sum_minus_logit" in checks and abs(checks["fafrp_sum_minus_logit"]) > 1e-9 * max(1, abs(checks["logit"])):
        raise SystemExit(f"{name}: sum V - logit = {checks['fafrp_sum_minus_logit']:.3g}")
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "raw.npy"), r64.astype(np.float32))
    meta = dict(**golden_cases.meta_model(model_name), method=method, **opts, **{"class": c}, predicted=pred, logit=logit, raw_shape=list(r64.shape),
                f32_rel_err=float(err), checks=checks, torch=torch.__version__)
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{name}: class {c} (predicted {pred}), f32 err {err:.2g}, {checks}")


if __name__ == "__main__":
    golden_cases.main(__doc__, "tests/goldens/relevance", CASES, run_case)
