#!/usr/bin/python3
"""The input-gradient methods of the engine and of tools/ref_gradients.py (the
goldens' oracle) against captum 0.7.0 on the shipped model: for the first N
sample scenes, captum's InputXGradient, IntegratedGradients (Gauss-Legendre
with 50 steps and a black baseline; riemann_trapezoid with 20 steps and a zero
baseline), NoiseTunnel(Saliency) (smoothgrad, 25 samples, abs, the engine's
noise: torch.normal is replaced during the call by sd * the shared stream of
tools/prng.py normal) and GuidedGradCam (features.29, interpolate_mode
"bilinear"), reduced as the engine reduces each (docs/methods.md), against
`attrib explain` maps and ref_gradients' maps. Prints the max abs difference
per method and image, and integrated gradients' completeness (sum of the
attribution vs f(x) - f(x')) for the engine and captum; exits 1 above TOL.

With captum in .peers (tools/captum_check.py), from the repository root after `make`:
  PYTHONPATH=.peers /usr/bin/python3 tools/check_grad_peers.py [--images 3]
"""
import json
import os
import sys
import tempfile
from contextlib import contextmanager

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import captum_check as cc  # noqa: E402
import predict_torch  # noqa: E402
import ref_gradients  # noqa: E402

# Maps in [0,1]. Both sides run float32 from images preprocessed apart (they
# agree to ~1e-6, tests/test_shipped_model.c), so a max-pool or ReLU near a
# tie can flip at a few pixels or, for integrated gradients, at one of the
# path's nodes (as in tools/check_backprop_peers.py).
TOL = 5e-3
SG_SAMPLES = 25

# name, engine options, captum call (model, x, cls, xb, sd) -> attribution [C,H,W], reduction
CASES = [
    ("input-x-gradient", [], "ixg", "sum"),
    ("integrated-gradients", [], "ig-gl50-black", "sum"),
    ("integrated-gradients", ["--ig-rule", "riemann-trapezoid", "--ig-steps", "20", "--baseline", "zero"],
     "ig-trap20-zero", "sum"),
    ("smoothgrad", [], "smoothgrad", "max"),
    ("guided-gradcam", [], "guided-gradcam", "max"),
]


@contextmanager
def shared_noise(samples, shape, seed=0):
    """captum's NoiseTunnel draws torch.normal(0, stdev_expanded); give it the
    engine's noise instead (one image per call: sample j is row j)."""
    z = torch.from_numpy(ref_gradients.prng.normal("smoothgrad", seed, (samples,) + tuple(shape[1:])))
    real = torch.normal

    def fake(mean, std, *a, **k):
        return std * z.to(std.dtype).reshape(std.shape)

    torch.normal = fake
    try:
        yield
    finally:
        torch.normal = real


def captum_attribution(kind, model, x, cls, mean, std):
    from captum.attr import GuidedGradCam, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency
    x = x.clone().requires_grad_(True)
    if kind == "ixg":
        return InputXGradient(model).attribute(x, target=cls).detach()[0], None
    if kind.startswith("ig-"):
        steps, method, bl = (50, "gausslegendre", "black") if kind == "ig-gl50-black" else (20, "riemann_trapezoid", "zero")
        xb = ref_gradients.baseline_of(x.detach(), bl, mean, std)
        a, delta = IntegratedGradients(model).attribute(x, baselines=xb, target=cls, n_steps=steps, method=method,
                                                        return_convergence_delta=True)
        return a.detach()[0], float(delta)
    if kind == "smoothgrad":
        sd = ref_gradients.SG_SIGMA * float(x.max() - x.min())
        with shared_noise(SG_SAMPLES, x.shape):
            a = NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=SG_SAMPLES, stdevs=sd,
                                                       target=cls, abs=True)
        return a.detach()[0], None
    if kind == "guided-gradcam":
        return GuidedGradCam(model, model.features[29]).attribute(x, target=cls, interpolate_mode="bilinear").detach()[0], None
    raise ValueError(kind)


def reduce(e, how):
    return cc.minmax(np.maximum(e.sum(0), 0) if how == "sum" else np.abs(e).max(0))


def main():
    a = cc.parse_args(__doc__.split("\n")[0], 3)
    torch.set_num_threads(2)
    images = cc.sample_images(a.images)
    model, meta, transform = cc.load_model(a.model)
    mean, std = json.loads(meta.get("mean", "[0.485, 0.456, 0.406]")), json.loads(meta.get("std", "[0.229, 0.224, 0.225]"))
    worst = 0.0
    with tempfile.TemporaryDirectory() as out:
        for method, opts, kind, how in CASES:
            results = cc.engine_results(a, method, os.path.join(out, kind), images, opts)
            for path in images:
                r = results[path]
                x = predict_torch.preprocess([path], transform)
                e, delta = captum_attribution(kind, model, x, r["class"], mean, std)
                peer = reduce(e.numpy(), how)
                kw = {}
                if kind.startswith("ig-"):
                    kw = dict(ig_steps=50, baseline="black") if kind == "ig-gl50-black" else \
                        dict(ig_steps=20, ig_rule="riemann-trapezoid", baseline="zero")
                ref = ref_gradients.run(model, x, method, r["class"], "features.29", torch.float32, mean=mean, std=std,
                                        **kw)["map"].numpy()
                got = np.load(r["map"])
                de, dr = float(np.abs(got - peer).max()), float(np.abs(ref - peer).max())
                worst = max(worst, de, dr)
                extra = ""
                if delta is not None:
                    extra = ("  completeness: engine sum %.5g vs f(x)-f(x') %.5g; captum delta %.3g"
                             % (r["attribution_sum"], r["value_minus_baseline"], delta))
                print("%-15s %-28s class %d  max |engine - captum| %.3g, |reference - captum| %.3g%s"
                      % (kind, os.path.basename(path), r["class"], de, dr, extra))
    return cc.verdict(worst, TOL)


if __name__ == "__main__":
    sys.exit(main())
