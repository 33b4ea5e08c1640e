"""What the captum checks on the shipped model share (tools/check_backprop_peers.py,
tools/check_grad_peers.py): the options, the first N sample scenes, the
model rebuilt by tools/predict_torch.py with ReLUs captum can hook, the
engine's maps of one method, min-max to [0,1], and the verdict line.

The peer, installed beside the system, never into it:
  /usr/bin/python3 -m pip install --no-deps --target .peers captum==0.7.0
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import predict_torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(description, images):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--images", type=int, default=images)
    p.add_argument("--engine", default=os.path.join(ROOT, "attrib"))
    p.add_argument("--model", default=os.path.join(ROOT, "weights", "vgg16_mini.safetensors"))
    return p.parse_args()


def sample_images(n):
    with open(os.path.join(ROOT, "weights", "samples", "list.txt")) as f:
        return [os.path.join(ROOT, line.strip()) for line in f if line.strip()][:n]


def load_model(path):
    """-> model, metadata, transform; captum hooks the ReLU modules, and
    in-place ones break its backward hooks."""
    model, meta, _, transform = predict_torch.load_model(path)
    for mod in model.modules():
        if isinstance(mod, torch.nn.ReLU):
            mod.inplace = False
    return model, meta, transform


def engine_results(a, method, out, images, opts=()):
    """{image path: its results line} of `attrib explain --method method` on the CPU."""
    subprocess.run([a.engine, "explain", "--quiet", "--backend", "cpu", "--method", method, "--model", a.model,
                    "--no-overlay", "--out", out] + list(opts) + images, check=True)
    lines = [json.loads(line) for line in open(os.path.join(out, "results.jsonl"))]
    return {path: [x for x in lines if x["method"] == method and
                   os.path.abspath(x["image"]) == os.path.abspath(path)][-1] for path in images}


def minmax(m):
    lo, hi = m.min(), m.max()
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def verdict(worst, tol):
    print("worst %.3g (tolerance %g)" % (worst, tol))
    return 0 if worst <= tol else 1
