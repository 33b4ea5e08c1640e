#!/usr/bin/python3
"""Goldens for L-CAM (docs/methods.md#l-cam): PyTorch's output of a shipped
model's trained module (<model>.lcam.safetensors, tools/train_lcam.py) on the
committed samples. Per model, tests/goldens/lcam/<stem>/ holds
  meta.json   model and module SHA-256, layer, images, predicted classes
  scores.npy  float32 [N][n_classes][h][w]: the 1x1 conv's pre-sigmoid scores
  maps.npy    float32 [M][H][W]: the final maps of the first M images (the
              predicted class's scores min-max at the layer's resolution,
              bilinear align_corners=False to the input, min-max)
Preprocessing is torchvision's PIL path (tools/predict_torch.py).

  tools/make_lcam_goldens.py [--out tests/goldens/lcam] [--model weights/M.safetensors ...]
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_safetensors import read_safetensors  # noqa: E402
from predict_torch import load_model, preprocess  # noqa: E402
from train_lcam import trunk  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ["weights/vgg16_mini.safetensors", "weights/resnet18_mini.safetensors"]
N_IMAGES, N_MAPS = 32, 2


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def minmax(t):
    lo, hi = t.min(), t.max()
    return torch.zeros_like(t) if not hi > lo else (t - lo) / (hi - lo)


def lcam_maps(model, meta, module, x):
    """-> (scores [N][nc][h][w], logits, final maps [N][H][W] of the predicted class)."""
    w = torch.from_numpy(module[0]["weight"].reshape(module[0]["weight"].shape[0], -1, 1, 1))
    b = torch.from_numpy(module[0]["bias"])
    with torch.no_grad():
        A = trunk(model, meta, module[1]["layer"], x)
        scores = F.conv2d(A, w, b)
        logits = model(x)
    pred = logits.argmax(1)
    maps = []
    for i in range(len(x)):
        cam = minmax(scores[i, pred[i]])
        up = F.interpolate(cam[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
        maps.append(minmax(torch.relu(up)))
    return scores, logits, torch.stack(maps)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(ROOT, "tests", "goldens", "lcam"))
    p.add_argument("--model", action="append", help="relative to the repository root (default: both shipped models)")
    a = p.parse_args(argv)
    torch.set_num_threads(2)
    with open(os.path.join(ROOT, "weights", "samples", "list.txt")) as f:
        images = [line.strip() for line in f if line.strip()][:N_IMAGES]
    for rel in a.model or MODELS:
        path = os.path.join(ROOT, rel)
        stem = os.path.basename(rel)[:-len(".safetensors")]
        mod_path = os.path.join(os.path.dirname(path), stem + ".lcam.safetensors")
        if not os.path.exists(mod_path):
            print(f"{stem}: no {mod_path}; skipped")
            continue
        model, meta, _, transform = load_model(path)
        module = read_safetensors(mod_path)
        if module[1]["model_sha256"] != sha256_of(path):
            raise SystemExit(f"{mod_path} was trained for another {rel}")
        x = preprocess([os.path.join(ROOT, p) for p in images], transform)
        scores, logits, maps = lcam_maps(model, meta, module, x)
        out = os.path.join(a.out, stem)
        os.makedirs(out, exist_ok=True)
        np.save(os.path.join(out, "scores.npy"), scores.numpy().astype(np.float32))
        np.save(os.path.join(out, "maps.npy"), maps[:N_MAPS].numpy().astype(np.float32))
        with open(os.path.join(out, "meta.json"), "w") as f:
            json.dump({"model": rel, "model_sha256": sha256_of(path), "module": os.path.relpath(mod_path, ROOT),
                       "module_sha256": sha256_of(mod_path), "layer": module[1]["layer"], "images": images,
                       "predicted": logits.argmax(1).tolist(), "n_maps": N_MAPS}, f, indent=1)
        print(f"{out}: {len(images)} images, scores {tuple(scores.shape)}, {N_MAPS} maps")


if __name__ == "__main__":
    main()
