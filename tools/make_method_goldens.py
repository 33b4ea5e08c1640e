#!/usr/bin/python3
"""Goldens for the attribution methods (docs/methods.md#score-cam, #grad-cam-and-grad-cam, #gradient-saliency): small random VGGs
(tools/prng.py, the twin of host/model/random_model.c) run through the PyTorch
reference tools/ref_methods.py in float64. One folder per case under
tests/goldens/methods/ with
  meta.json    the model spec (as tools/make_goldens.py) plus method, variant,
               layer, class, predicted, map_shape, layer_shape, flat_channels
  map.npy      float32 [H,W], the final map in [0,1]
  cam.npy      float32 [h,w], the weighted channel sum at the layer's resolution
               before ReLU (CAM methods; for debugging a mismatch)
  weights.npy  float32 [C], the channel weights (CAM methods)
  scores.npy   float32 [C], Score-CAM's raw per-channel scores before any
               softmax over channels (a flat channel's score is that of X * 0 in
               every variant, docs/methods.md#score-cam, although the authors' map gives it
               weight 0)
The input is prng.fill("input", seed, (1,3,H,W), 2.0), already normalised.
Run: /usr/bin/python3 tools/make_method_goldens.py [--out tests/goldens/methods] [--only a,b]
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_cases  # noqa: E402
import ref_gradients  # noqa: E402
import ref_methods as ref  # noqa: E402

# name, model, method, variant, layer (None: input-gradient methods), class (None = predicted)
# [, params: ref_gradients.run keywords (unit as "LAYER,c[,x,y]"), written to meta.json]
CASES = [
    # Score-CAM, last conv's ReLU, the three variants
    ("scorecam_authors_vgg11", "vgg11_48x40", "scorecam", "authors", "features.19", None),
    ("scorecam_pgc_vgg11", "vgg11_48x40", "scorecam", "pgc", "features.19", None),
    ("scorecam_torchcam_vgg11", "vgg11_48x40", "scorecam", "torchcam", "features.19", None),
    # conv ordinal 4's ReLU: 3 of 8 channels are dead (flat), scored X * 0 by the peers
    ("scorecam_authors_vgg11_flat", "vgg11_48x40", "scorecam", "authors", "features.12", None),
    ("scorecam_pgc_vgg11_flat", "vgg11_48x40", "scorecam", "pgc", "features.12", None),
    ("scorecam_torchcam_vgg11_flat", "vgg11_48x40", "scorecam", "torchcam", "features.12", None),
    # a class that is not the predicted one
    ("scorecam_authors_vgg11_class5", "vgg11_48x40", "scorecam", "authors", "features.19", 5),
    # the 128x128 mini VGG16: last conv (7 flat channels of 64), last pool, conv ordinal 5
    ("scorecam_authors_mini16", "vgg16_mini", "scorecam", "authors", "features.29", None),
    ("scorecam_pgc_mini16", "vgg16_mini", "scorecam", "pgc", "features.29", None),
    ("scorecam_torchcam_mini16", "vgg16_mini", "scorecam", "torchcam", "features.29", None),
    ("scorecam_authors_mini16_pool", "vgg16_mini", "scorecam", "authors", "features.30", None),
    ("scorecam_authors_mini16_conv5", "vgg16_mini", "scorecam", "authors", "features.13", None),
    # Grad-CAM / Grad-CAM++
    ("gradcam_vgg11", "vgg11_48x40", "gradcam", "authors", "features.19", None),
    ("gradcam_vgg11_class5", "vgg11_48x40", "gradcam", "authors", "features.19", 5),
    ("gradcam_mini16", "vgg16_mini", "gradcam", "authors", "features.29", None),
    ("gradcam_mini16_pool", "vgg16_mini", "gradcam", "authors", "features.30", None),
    ("gradcampp_vgg11", "vgg11_48x40", "gradcam++", "authors", "features.19", None),
    # torchcam's denominator 2 g^2 + sum(A g^3) goes negative and near zero on the
    # mini VGG16's layers (float32 drifts 2e-4 there): keep to vgg11's last conv,
    # where it stays >= 2 g^2; class 7 is where torchcam's eps (1e-8, not
    # pgc's 1e-6) moves the map most (3e-5)
    ("gradcampp_torchcam_vgg11", "vgg11_48x40", "gradcam++", "torchcam", "features.19", None),
    ("gradcampp_torchcam_vgg11_class7", "vgg11_48x40", "gradcam++", "torchcam", "features.19", 7),
    ("gradcampp_mini16", "vgg16_mini", "gradcam++", "authors", "features.29", None),
    ("gradcampp_mini16_conv5", "vgg16_mini", "gradcam++", "authors", "features.13", None),
    # the CAM family (docs/methods.md#layercam .. #eigencam); fused LayerCAM layers as "a,b"
    ("layercam_vgg11", "vgg11_48x40", "layercam", "authors", "features.19", None),
    ("layercam_mini16_conv5", "vgg16_mini", "layercam", "authors", "features.13", None),
    ("layercam_fused_vgg11", "vgg11_48x40", "layercam", "authors", "features.9,features.14,features.19", None),
    ("layercam_fused_pgc_mini16", "vgg16_mini", "layercam", "pgc", "features.22,features.29", None),
    ("xgradcam_vgg11", "vgg11_48x40", "xgradcam", "authors", "features.19", None),
    ("xgradcam_torchcam_vgg11_flat", "vgg11_48x40", "xgradcam", "torchcam", "features.12", None),
    ("xgradcam_mini16_pool", "vgg16_mini", "xgradcam", "authors", "features.30", None),
    ("hirescam_vgg11_class5", "vgg11_48x40", "hirescam", "authors", "features.19", 5),
    ("hirescam_mini16", "vgg16_mini", "hirescam", "authors", "features.29", None),
    ("ablationcam_vgg11", "vgg11_48x40", "ablation-cam", "authors", "features.19", None),
    ("ablationcam_vgg11_flat", "vgg11_48x40", "ablation-cam", "authors", "features.12", None),
    # a pre-ReLU conv output: pgc's ablation value min - 1e7
    ("ablationcam_pgc_vgg11_conv", "vgg11_48x40", "ablation-cam", "pgc", "features.18", None),
    ("ablationcam_mini16", "vgg16_mini", "ablation-cam", "authors", "features.29", None),
    # h*w < K (6 < 8: the pixel Gram matrix) and h*w > K (120 > 8, 64 = 64: the channel one)
    ("eigencam_vgg11", "vgg11_48x40", "eigencam", "authors", "features.19", None),
    ("eigencam_vgg11_conv4", "vgg11_48x40", "eigencam", "authors", "features.12", None),
    ("eigencam_mini16", "vgg16_mini", "eigencam", "authors", "features.29", None),
    # the two sign rules disagree on this layer: pgc's map is the mirror's
    ("eigencam_mini16_pool", "vgg16_mini", "eigencam", "authors", "features.30", None),
    ("eigencam_pgc_mini16_pool", "vgg16_mini", "eigencam", "pgc", "features.30", None),
    # the CAM family on ResNet: layer4 (the default), a block output of layer3, fused blocks
    ("layercam_fused_resnet18", "resnet18_64", "layercam", "authors", "layer3,layer4", None),
    ("xgradcam_resnet18", "resnet18_64", "xgradcam", "authors", "layer4", None),
    ("hirescam_resnet50", "resnet50_64", "hirescam", "authors", "layer4", None),
    ("ablationcam_resnet18", "resnet18_64", "ablation-cam", "authors", "layer4", None),
    ("ablationcam_resnet50_layer3", "resnet50_64", "ablation-cam", "authors", "layer3.1", None),
    ("eigencam_resnet50", "resnet50_64", "eigencam", "authors", "layer4", None),
    # input-gradient maps
    ("saliency_vgg11_32", "vgg11_32", "saliency", "authors", None, None),
    ("contrastive_vgg11_32", "vgg11_32", "contrastive", "authors", None, None),
    ("saliency_mini16", "vgg16_mini", "saliency", "authors", None, None),
    ("contrastive_mini16_class3", "vgg16_mini", "contrastive", "authors", None, 3),
    # ResNet: layer4 (the CAM default), an earlier block, both block kinds
    ("scorecam_authors_resnet18", "resnet18_64", "scorecam", "authors", "layer4", None),
    ("scorecam_pgc_resnet18_layer3", "resnet18_64", "scorecam", "pgc", "layer3.1", None),
    ("scorecam_authors_resnet50", "resnet50_64", "scorecam", "authors", "layer4", None),
    ("gradcam_resnet18", "resnet18_64", "gradcam", "authors", "layer4", None),
    ("gradcam_resnet50_layer3", "resnet50_64", "gradcam", "authors", "layer3", None),
    ("gradcampp_resnet18", "resnet18_64", "gradcam++", "authors", "layer4", None),
    ("gradcampp_resnet50", "resnet50_64", "gradcam++", "authors", "layer4", 2),
    ("saliency_resnet18", "resnet18_64", "saliency", "authors", None, None),
    ("contrastive_resnet50", "resnet50_64", "contrastive", "authors", None, None),
    ("guided_backprop_resnet18", "resnet18_64", "guided-backprop", "authors", None, None),
    ("guided_backprop_resnet50", "resnet50_64", "guided-backprop", "authors", None, 1),
    ("deconvnet_resnet18", "resnet18_64", "deconvnet", "authors", None, None),
    # the ReLU-rule maps and the methods built on input gradients (ref_gradients.py)
    ("guided_backprop_vgg11_32", "vgg11_32", "guided-backprop", "authors", None, None),
    ("deconvnet_mini16", "vgg16_mini", "deconvnet", "authors", None, None),
    ("guided_gradcam_vgg11", "vgg11_48x40", "guided-gradcam", "authors", "features.19", None),
    ("guided_gradcam_mini16_conv5", "vgg16_mini", "guided-gradcam", "authors", "features.13", 3),
    ("ixg_vgg11_32", "vgg11_32", "input-x-gradient", "authors", None, None),
    ("ixg_mini16", "vgg16_mini", "input-x-gradient", "authors", None, None),
    # on the mini VGG16 most 50-node paths cross a near-tied max-pool or ReLU at
    # some node (float32 and float64 then take different branches there): the
    # default rule runs on vgg11 below, the mini on a short flip-free path
    ("ig_mini16_zero", "vgg16_mini", "integrated-gradients", "authors", None, None, dict(baseline="zero", ig_steps=6)),
    ("ig_vgg11_32", "vgg11_32", "integrated-gradients", "authors", None, None, {}),
    ("ig_vgg11_zero", "vgg11_48x40", "integrated-gradients", "authors", None, 5, dict(baseline="zero", ig_steps=16)),
    ("ig_vgg11_32_trapezoid", "vgg11_32", "integrated-gradients", "authors", None, None,
     dict(ig_rule="riemann-trapezoid", ig_steps=20)),
    ("ig_vgg11_32_left", "vgg11_32", "integrated-gradients", "authors", None, None, dict(ig_rule="riemann-left", ig_steps=7)),
    ("ig_vgg11_32_right", "vgg11_32", "integrated-gradients", "authors", None, None,
     dict(ig_rule="riemann-right", ig_steps=7, baseline="zero")),
    ("ig_vgg11_32_middle", "vgg11_32", "integrated-gradients", "authors", None, None, dict(ig_rule="riemann-middle", ig_steps=7)),
    ("smoothgrad_vgg11_32", "vgg11_32", "smoothgrad", "authors", None, None, {}),
    ("smoothgrad_mini16_square", "vgg16_mini", "smoothgrad", "authors", None, None,
     dict(smooth=8, sg_square=True, sg_sigma=0.2, sg_seed=3)),
    ("smooth_guided_backprop_vgg11", "vgg11_48x40", "guided-backprop", "authors", None, None, dict(smooth=6)),
    ("smooth_ixg_vgg11_32", "vgg11_32", "input-x-gradient", "authors", None, 2, dict(smooth=5, sg_seed=9)),
    ("smooth_ig_vgg11_32", "vgg11_32", "integrated-gradients", "authors", None, None, dict(smooth=3, ig_steps=4)),
    ("smooth_guided_gradcam_vgg11", "vgg11_48x40", "guided-gradcam", "authors", "features.19", None, dict(smooth=4)),
    # a hidden unit instead of a logit: a channel's sum, one element, a linear unit
    ("saliency_unit_mini16_channel", "vgg16_mini", "saliency", "authors", None, None, dict(unit="features.29,5")),
    ("ixg_unit_vgg11_element", "vgg11_48x40", "input-x-gradient", "authors", None, None, dict(unit="features.12,2,3,4")),
    ("ig_unit_vgg11_32_linear", "vgg11_32", "integrated-gradients", "authors", None, None,
     dict(unit="classifier.3,7", ig_steps=12)),
    ("guided_backprop_unit_mini16", "vgg16_mini", "guided-backprop", "authors", None, None, dict(unit="features.21,1,6,9")),
    # the input-gradient methods on ResNet (both block kinds; no zero baseline:
    # near it the BN-shifted stem is almost constant and every max-pool window a near tie)
    ("guided_gradcam_resnet18", "resnet18_64", "guided-gradcam", "authors", "layer4", None),
    ("ixg_resnet50", "resnet50_64", "input-x-gradient", "authors", None, None),
    ("ig_resnet18", "resnet18_64", "integrated-gradients", "authors", None, None, dict(ig_steps=16)),
    ("ig_resnet50_class1", "resnet50_64", "integrated-gradients", "authors", None, 1, dict(ig_steps=8)),
    ("smoothgrad_resnet18", "resnet18_64", "smoothgrad", "authors", None, None, dict(smooth=6, sg_seed=2)),
]


# the methods tools/ref_gradients.py computes
GRADIENT_METHODS = ("guided-gradcam", "input-x-gradient", "integrated-gradients", "smoothgrad")


def parse_unit(spec):
    """"LAYER,c[,x,y]" -> (layer, c, x, y) with x = y = None for the channel's sum."""
    p = spec.split(",")
    return (p[0], int(p[1]), int(p[2]), int(p[3])) if len(p) == 4 else (p[0], int(p[1]), None, None)

# float32 vs float64 maps may differ by this much (max abs, maps in [0,1]) before
# a case counts as ill-conditioned (near-tied max-pool windows or ReLU inputs
# flip under float32 rounding) and is refused: the C tests compare at a tighter
# tolerance than this, so a case must be far from any such flip.
MAP_F32_TOL = 1e-3
# The same for weights and scores, relative to their largest magnitude.
VEC_F32_RTOL = 1e-3


def compute(model_name, method, variant, layer, cls, dtype, params=None):
    model, x = golden_cases.build(model_name)
    if params is None and method not in GRADIENT_METHODS and (
            method not in ("guided-backprop", "deconvnet") or hasattr(model, "relu_fn")):
        r = ref.run_method(model, x, method, variant, cls, layer or ("maxpool" if hasattr(model, "trunk") else "features.0"),
                           dtype)
    else:
        kw = dict(params or {})
        if "unit" in kw:
            kw["unit"] = parse_unit(kw["unit"])
        r = ref_gradients.run(model, x, method, cls, layer, dtype, **kw)
    return {k: (v.detach().double().numpy() if torch.is_tensor(v) else v) for k, v in r.items()}


def run_case(out_dir, case):
    name, model_name, method, variant, layer, cls = case[:6]
    params = case[6] if len(case) > 6 else None
    r64 = compute(model_name, method, variant, layer, cls, torch.float64, params)
    r32 = compute(model_name, method, variant, layer, cls, torch.float32, params)
    err = np.abs(r64["map"] - r32["map"]).max()
    if err > MAP_F32_TOL:
        raise SystemExit(f"{name}: map is ill-conditioned (float32 vs float64 differ by {err:.3g}); change the case")
    if r32["cls"] != r64["cls"] or r32["predicted"] != r64["predicted"]:
        raise SystemExit(f"{name}: the predicted class differs between float32 and float64; change the case")
    for k in ("weights", "scores"):
        if k in r64:
            scale = np.abs(r64[k]).max()
            e = np.abs(r64[k] - r32[k]).max()
            if e > VEC_F32_RTOL * scale:
                raise SystemExit(f"{name}: {k} are ill-conditioned ({e:.3g} of {scale:.3g}); change the case")
    if not r64["map"].max() > 0:
        raise SystemExit(f"{name}: the map is all zero; pick a case whose map says something")
    flat = [int(i) for i in np.flatnonzero(r64["flat"])] if "flat" in r64 else None
    if flat is None and "activations" in r64:
        a = r64["activations"]
        flat = [int(i) for i in np.flatnonzero(a.max(axis=(1, 2)) == a.min(axis=(1, 2)))]

    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    files = ["map.npy"]
    np.save(os.path.join(d, "map.npy"), r64["map"].astype(np.float32))
    for k in ("cam", "weights", "scores"):
        if k in r64:
            np.save(os.path.join(d, k + ".npy"), r64[k].astype(np.float32))
            files.append(k + ".npy")
    meta = dict(**golden_cases.meta_model(model_name), method=method, variant=variant, layer=layer, **{"class": r64["cls"]}, predicted=r64["predicted"],
                map_shape=list(r64["map"].shape),
                layer_shape=list(r64["activations"].shape) if "activations" in r64 else None,
                flat_channels=flat, files=files, f32_map_err=float(err), torch=torch.__version__)
    if params is not None:
        meta["params"] = params
    for k in ("value", "baseline_value", "attribution_sum"):
        if k in r64 and (params is not None or method not in ref.METHODS):
            meta[k] = r64[k]
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    extra = f" flat={flat}" if flat else ""
    print(f"{name}: class {r64['cls']} (predicted {r64['predicted']}), f32 err {err:.2g}{extra}")


if __name__ == "__main__":
    golden_cases.main(__doc__, "tests/goldens/methods", CASES, run_case)
