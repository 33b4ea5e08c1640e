#!/usr/bin/python3
"""Goldens for the perturbation methods (docs/methods.md#rise, #occlusion,
#meaningful-perturbation): small random VGGs (tools/prng.py) through the PyTorch
reference tools/ref_perturb.py in float64, with small N and few iterations so
the C test stays cheap. One folder per case under tests/goldens/perturb/ with
  meta.json   the model spec (as make_method_goldens.py), method and its options
              (rise_n, rise_s, rise_p, rise_seed; window, stride, baseline, score;
              iterations, lr, l1, tv, beta, mask), class, predicted
  map.npy     float32 [H,W], the final map in [0,1]
  masks.npy   RISE on the 48x40 model: the generator's first 4 masks [4,H,W]
  mask.npy    meaningful perturbation: the optimised mask [M,M]
The input is prng.fill("input", seed, (1,3,H,W), 2.0), already normalised.
Run: /usr/bin/python3 tools/make_perturb_goldens.py [--out tests/goldens/perturb] [--only a,b]
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_cases  # noqa: E402
import ref_perturb as ref  # noqa: E402

# name, model, method, options, class (None = predicted)
CASES = [
    ("rise_vgg11_48x40", "vgg11_48x40", "rise", dict(rise_n=200, rise_s=7, rise_p=0.5, rise_seed=0), None),
    ("rise_vgg11_32_s4_p03", "vgg11_32", "rise", dict(rise_n=200, rise_s=4, rise_p=0.3, rise_seed=5), 2),
    ("rise_mini16", "vgg16_mini", "rise", dict(rise_n=48, rise_s=7, rise_p=0.5, rise_seed=1), None),
    ("occlusion_vgg11_32", "vgg11_32", "occlusion", dict(window=0, stride=0, baseline="mean", score="prob"), None),
    ("occlusion_vgg11_48x40_cut_logit", "vgg11_48x40", "occlusion",
     dict(window=7, stride=5, baseline="mean", score="logit"), None),
    ("occlusion_mini16_black", "vgg16_mini", "occlusion", dict(window=16, stride=8, baseline="black", score="prob"),
     None),
    ("mp_vgg11_32", "vgg11_32", "meaningful-perturbation",
     dict(iterations=40, lr=0.1, l1=1e-4, tv=1e-2, beta=3.0, mask=28, sigma=0), None),
    ("mp_vgg11_48x40_options", "vgg11_48x40", "meaningful-perturbation",
     dict(iterations=20, lr=0.05, l1=1e-3, tv=1e-2, beta=2.0, mask=10, sigma=3.0), None),
    ("mp_vgg11_32_logit", "vgg11_32", "meaningful-perturbation",
     dict(iterations=25, lr=0.1, l1=1e-4, tv=1e-2, beta=3.0, mask=14, sigma=0, score="logit"), None),
    ("mp_mini16", "vgg16_mini", "meaningful-perturbation",
     dict(iterations=8, lr=0.1, l1=1e-4, tv=1e-2, beta=3.0, mask=28, sigma=0), None),
    # ResNet: both block kinds
    ("rise_resnet18", "resnet18_64", "rise", dict(rise_n=64, rise_s=5, rise_p=0.5, rise_seed=2), None),
    ("occlusion_resnet50_logit", "resnet50_64", "occlusion", dict(window=9, stride=6, baseline="mean", score="logit"),
     None),
    ("mp_resnet18", "resnet18_64", "meaningful-perturbation",
     dict(iterations=10, lr=0.1, l1=1e-4, tv=1e-2, beta=3.0, mask=14, sigma=0), None),
]
# float32 vs float64 maps may differ by this much before a case counts as
# ill-conditioned and is refused (the C test compares at 2e-4 / 1e-3).
MAP_F32_TOL = {"rise": 1e-4, "occlusion": 1e-4, "meaningful-perturbation": 5e-4}


def build(model_name, dtype):
    model, x = golden_cases.build(model_name, dtype)
    return (model if hasattr(model, "layer4") else ref.Classifier(model)), x


def compute(model_name, method, o, cls, dtype):
    model, x = build(model_name, dtype)
    h, w = x.shape[2:]
    if method == "rise":
        masks = ref.rise_masks(h, w, o["rise_s"], o["rise_p"], o["rise_seed"], o["rise_n"])
        r = ref.rise(model, x, cls, torch.from_numpy(masks).to(dtype), o["rise_p"])
        r["masks"] = masks[:4]
    elif method == "occlusion":
        side = min(h, w)
        win = o["window"] or max(1, round(15 * side / 224))
        st = o["stride"] or max(1, round(8 * side / 224))
        r = ref.occlusion(model, x, cls, win, st, o["baseline"], o["score"])
    else:
        r = ref.meaningful_perturbation(model, x, cls, o["iterations"], o["lr"], o["l1"], o["tv"], o["beta"],
                                        o["mask"], o["sigma"] or None, o.get("score", "prob"))
    return {k: (v.detach().double().numpy() if torch.is_tensor(v) else v) for k, v in r.items()}


def run_case(out_dir, case):
    name, model_name, method, o, cls = case
    r64 = compute(model_name, method, o, cls, torch.float64)
    r32 = compute(model_name, method, o, cls, torch.float32)
    err = np.abs(r64["map"] - r32["map"]).max()
    if err > MAP_F32_TOL[method]:
        raise SystemExit(f"{name}: map is ill-conditioned (float32 vs float64 differ by {err:.3g}); change the case")
    if r32["predicted"] != r64["predicted"]:
        raise SystemExit(f"{name}: the predicted class differs between float32 and float64")
    if not r64["map"].max() > 0:
        raise SystemExit(f"{name}: the map is all zero; pick a case whose map says something")
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    files = ["map.npy"]
    np.save(os.path.join(d, "map.npy"), r64["map"].astype(np.float32))
    if method == "rise" and model_name == "vgg11_48x40":
        np.save(os.path.join(d, "masks.npy"), r64["masks"].astype(np.float32))
        files.append("masks.npy")
    if method == "meaningful-perturbation":
        np.save(os.path.join(d, "mask.npy"), r64["mask"].astype(np.float32))
        files.append("mask.npy")
    meta = dict(**golden_cases.meta_model(model_name), method=method, **o, **{"class": r64["cls"]}, predicted=r64["predicted"], files=files,
                f32_map_err=float(err), torch=torch.__version__)
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{name}: class {r64['cls']} (predicted {r64['predicted']}), f32 err {err:.2g}")


if __name__ == "__main__":
    golden_cases.main(__doc__, "tests/goldens/perturb", CASES, run_case, threads=1)
