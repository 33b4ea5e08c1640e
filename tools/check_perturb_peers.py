#!/usr/bin/python3
"""The perturbation references (tools/ref_perturb.py, behind tests/goldens/perturb)
against the peers, live, where their conventions can be aligned:

  RISE vs TorchRay 1.0 `torchray.attribution.rise.rise`: TorchRay is given our
    masks (filter_masks) and a model whose output is logit(softmax), so that its
    sigmoid(output) is our softmax probability; it divides by N where we divide
    by N*p, a constant that min-max removes. TorchRay's own generator differs
    (each cell exactly ceil(H/s) px, reflect-padded, cropped from H + cell, not
    stretched to (s+1)*cell) and it scores sigmoid(logit): neither is aligned,
    docs/methods.md#rise.
  Occlusion vs captum 0.7 `Occlusion`: window (3, w, w), strides (3, s, s),
    baselines 0 (the dataset mean colour in the normalised space) or -mean/std
    (black), forward_func = softmax(model) or the logits; captum averages each
    pixel over the windows covering it, as we do.

  PYTHONPATH=.peers /usr/bin/python3 tools/check_perturb_peers.py
Prints the max abs difference of the final maps ([0,1]) per case; exits 1 when
one exceeds TOL.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_perturb_goldens as goldens  # noqa: E402
import ref_perturb as ref  # noqa: E402

TOL = 1e-5  # float64 on both sides: summation order, and RISE's logit(softmax) round trip (~6e-7)


def minmax_relu(t):
    return ref.minmax(torch.relu(t))


def check_rise(model_name, n, s, p, seed):
    from torchray.attribution.rise import rise
    model, x = goldens.build(model_name, torch.float64)
    h, w = x.shape[2:]
    masks = torch.from_numpy(ref.rise_masks(h, w, s, p, seed, n))
    ours = ref.rise(model, x, None, masks, p)

    class LogitOfSoftmax(torch.nn.Module):
        def forward(self, z):
            q = F.softmax(model(z), dim=1)
            return torch.log(q) - torch.log1p(-q)

    sal = rise(LogitOfSoftmax(), x, num_masks=n, filter_masks=masks[:, None], batch_size=32)
    theirs = minmax_relu(sal[0, ours["cls"]])
    return float((ours["map"] - theirs).abs().max())


def check_occlusion(model_name, window, stride, baseline, score):
    from captum.attr import Occlusion
    model, x = goldens.build(model_name, torch.float64)
    ours = ref.occlusion(model, x, None, window, stride, baseline, score)
    fwd = (lambda z: F.softmax(model(z), dim=1)) if score == "prob" else model
    base = 0.0 if baseline == "mean" else torch.tensor(-ref.MEAN / ref.STD, dtype=x.dtype)[None, :, None, None]
    att = Occlusion(fwd).attribute(x, sliding_window_shapes=(3, window, window), strides=(3, stride, stride),
                                   baselines=base, target=ours["cls"], perturbations_per_eval=16)
    theirs = minmax_relu(att[0, 0])
    return float((ours["map"] - theirs).abs().max())


def main():
    torch.set_num_threads(2)
    worst = 0.0
    cases = [
        ("rise vgg11_48x40 N200 s7 p0.5", lambda: check_rise("vgg11_48x40", 200, 7, 0.5, 0)),
        ("rise mini16 N48 s7 p0.5", lambda: check_rise("vgg16_mini", 48, 7, 0.5, 1)),
        ("rise vgg11_32 N200 s4 p0.3", lambda: check_rise("vgg11_32", 200, 4, 0.3, 5)),
        ("occlusion vgg11_32 2/1 mean prob", lambda: check_occlusion("vgg11_32", 2, 1, "mean", "prob")),
        ("occlusion vgg11_48x40 7/5 mean logit", lambda: check_occlusion("vgg11_48x40", 7, 5, "mean", "logit")),
        ("occlusion mini16 16/8 black prob", lambda: check_occlusion("vgg16_mini", 16, 8, "black", "prob")),
    ]
    for name, fn in cases:
        err = fn()
        worst = max(worst, err)
        print(f"{name:40s} max |ours - peer| = {err:.3g}")
    print(f"worst {worst:.3g} (tolerance {TOL})")
    sys.exit(0 if worst <= TOL else 1)


if __name__ == "__main__":
    main()
