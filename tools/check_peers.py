#!/usr/bin/python3
"""Holds tools/ref_methods.py (and tools/ref_cam_family.py, through
tools/check_cam_family_peers.py) against the real peer libraries on small random
VGGs (tools/prng.py) on the CPU, in float64, and prints the max abs difference
per (method, variant); exits 1 when one exceeds its tolerance.

Peers (installed beside the system, never into it):
  /usr/bin/python3 -m pip install --no-deps --target .peers grad-cam==1.5.7 ttach torchcam
  apt-get install -y python3-opencv python3-tqdm python3-matplotlib python3-scipy
Optional, the Score-CAM authors' code (not a package; it is only read here):
  .peers/Score-CAM/cam/scorecam.py from github.com/haofanwang/Score-CAM
  (e.g. git clone https://github.com/haofanwang/Score-CAM .peers/Score-CAM).
Run from the repository root:
  PYTHONPATH=.peers /usr/bin/python3 tools/check_peers.py
"""
import argparse
import contextlib
import io
import os
import sys
import types

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_cam_family_peers  # noqa: E402
import prng  # noqa: E402
import ref_methods as ref  # noqa: E402
import vgg_torch  # noqa: E402

# Tolerances on max |peer - ref| of maps in [0,1] (weights: relative to their
# largest magnitude). Both sides run in float64 unless a peer drops to float32:
PGC_TOL = 2e-6       # pgc casts Score-CAM scores to float32 (score_cam.py:54) and
                     # every map to float32 for cv2.resize (utils/image.py:171):
                     # float32 rounding (6e-8) of values ~1, a few ulps after
                     # resize and two normalisations.
TORCHCAM_TOL = 1e-9  # float64 throughout, same operations in another order.
AUTHORS_TOL = 1e-9   # float64 (default dtype set to float64 for their
                     # torch.zeros accumulator), same operations.
ENGINE_TOL = 1e-6    # a peer's final stage vs ours (ReLU, Up, exact min-max):
                     # they differ by the 1e-7 / 1e-8 epsilons only.

SEED = 20241
# name, arch, widths, hidden, classes, h, w, avgpool, [(layer, class or None)].
# Probes: last conv's ReLU, a max-pool output, a layer with dead (flat)
# channels (vgg11 features.12: 3 of 8; mini features.29/.30: 7 of 64), an
# earlier conv (ordinal 5's ReLU) and a class that is not the predicted one.
MODELS = [
    ("vgg11_small", "vgg11", [4, 6, 8, 8, 8, 8, 8, 8], [16, 12], 8, 48, 40, 2,
     [("features.19", None), ("features.15", None), ("features.12", None), ("features.14", 3)]),
    ("vgg16_mini", "vgg16", [8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 64], [256, 256], 10, 128, 128, 4,
     [("features.29", None), ("features.30", None), ("features.13", None)]),
]


def build(arch, widths, hidden, nc, h, w, avgpool):
    state = prng.random_vgg_state(arch, widths, hidden, nc, avgpool, SEED)
    model = ref.TorchvisionVGG(vgg_torch.build_vgg(arch, state, avgpool)).double().eval()
    x = torch.from_numpy(prng.fill("input", SEED, (1, 3, h, w), 2.0)).double()
    return model, x


def module(model, layer):
    return model.features[ref.layer_index(layer)]


def recording(cls):
    """A peer CAM class that keeps the channel weights it computed."""
    class Recorded(cls):
        def get_cam_weights(self, *args, **kwargs):
            self.weights = super().get_cam_weights(*args, **kwargs)
            return self.weights

        def _get_weights(self, *args, **kwargs):
            self.weights = super()._get_weights(*args, **kwargs)
            return self.weights
    return Recorded


def run_pgc(name, model, x, layer, cls):
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    cam_cls = {"scorecam": ScoreCAM, "gradcam": GradCAM, "gradcam++": GradCAMPlusPlus}[name]
    cam = recording(cam_cls)(model=model, target_layers=[module(model, layer)])
    with contextlib.redirect_stderr(io.StringIO()):  # tqdm progress bars
        m = cam(input_tensor=x, targets=[ClassifierOutputTarget(cls)])
    weights = np.asarray(cam.weights)[0]
    cam.activations_and_grads.release()
    return dict(map=m[0], weights=weights)


def run_torchcam(name, model, x, layer, cls):
    from torchcam.methods import GradCAM, GradCAMpp, ScoreCAM
    cam_cls = {"scorecam": ScoreCAM, "gradcam": GradCAM, "gradcam++": GradCAMpp}[name]
    cam = recording(cam_cls)(model, layer, input_shape=tuple(x.shape[1:]))
    if name == "scorecam":
        with torch.no_grad():
            model(x)
        low = cam(class_idx=cls)[0][0]
    else:
        low = cam(class_idx=cls, scores=model(x))[0][0]
    weights = cam.weights[0][0]
    cam.remove_hooks()
    return dict(cam=low.detach().numpy(), weights=weights.detach().numpy())


def authors_scorecam_class():
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".peers", "Score-CAM")
    if not os.path.exists(os.path.join(path, "cam", "scorecam.py")):
        return None
    # Their cam/basecam.py pulls in their utils package; ScoreCAM only needs a
    # base class, so give it an empty one and set the hook up ourselves.
    cam_pkg = types.ModuleType("cam")
    cam_pkg.__path__ = [os.path.join(path, "cam")]
    base = types.ModuleType("cam.basecam")
    base.BaseCAM = type("BaseCAM", (object,), {"__init__": lambda self, *a: None})
    sys.modules.setdefault("cam", cam_pkg)
    sys.modules["cam.basecam"] = base
    from cam.scorecam import ScoreCAM
    return ScoreCAM


def run_authors(model, x, layer, cls, score_cam_cls):
    sc = score_cam_cls(None)
    sc.model_arch, sc.activations = model, {}
    hook = module(model, layer).register_forward_hook(lambda m, i, o: sc.activations.__setitem__("value", o))
    cuda, dtype = torch.Tensor.cuda, torch.get_default_dtype()
    torch.Tensor.cuda = lambda self, *a, **k: self  # their code calls .cuda() unconditionally (scorecam.py:36)
    torch.set_default_dtype(torch.float64)           # their accumulator is torch.zeros (scorecam.py:57)
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")           # F.softmax without dim
            m = sc(x, class_idx=cls)
    finally:
        torch.Tensor.cuda = cuda
        torch.set_default_dtype(dtype)
        hook.remove()
    return dict(map=None if m is None else m[0, 0].numpy())


def maxdiff(a, b):
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def reldiff(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args()
    torch.set_num_threads(2)
    authors_cls = authors_scorecam_class()
    rows = []  # (method, variant, peer, case, what, diff, tol or None)

    def add(method, variant, peer, case, what, diff, tol):
        rows.append((method, variant, peer, case, what, diff, tol))

    for name, arch, widths, hidden, nc, h, w, avgpool, probes in MODELS:
        model, x = build(arch, widths, hidden, nc, h, w, avgpool)
        for layer, cls in probes:
            with torch.no_grad():
                predicted = int(model(x).argmax())
            c = predicted if cls is None else cls
            case = f"{name}/{layer}/c{c}" + ("" if cls is None else "(not predicted)" if c != predicted else "")
            for method in ("scorecam", "gradcam", "gradcam++"):
                fn = {"scorecam": ref.score_cam, "gradcam": ref.grad_cam, "gradcam++": ref.grad_cam_pp}[method]
                # pytorch-grad-cam
                r = fn(model, x, c, layer, "pgc")
                p = run_pgc(method, model, x, layer, c)
                add(method, "pgc", "pytorch-grad-cam", case, "map", maxdiff(p["map"], r["map"]), PGC_TOL)
                add(method, "pgc", "pytorch-grad-cam", case, "weights(rel)", reldiff(p["weights"], r["weights"]),
                    PGC_TOL)
                ours = ref.finish_map(r["cam"], h, w, "authors")
                add(method, "pgc", "pytorch-grad-cam", case, "map vs our final stage", maxdiff(p["map"], ours),
                    ENGINE_TOL)
                # torchcam
                tc_variants = ["torchcam"] if method != "gradcam++" else ["torchcam-asrun", "torchcam"]
                t = run_torchcam(method, model, x, layer, c)
                for v in tc_variants:
                    r = fn(model, x, c, layer, v)
                    tol = None if v == "torchcam" and method == "gradcam++" else TORCHCAM_TOL
                    add(method, v, "torchcam", case, "cam (layer res.)",
                        maxdiff(t["cam"], ref.torchcam_output(r["cam"])), tol)
                    add(method, v, "torchcam", case, "weights(rel)", reldiff(t["weights"], r["weights"]), tol)
                # the Score-CAM authors
                if method == "scorecam" and authors_cls is not None:
                    r = fn(model, x, c, layer, "authors")
                    a = run_authors(model, x, layer, c, authors_cls)
                    d = float("inf") if a["map"] is None else maxdiff(a["map"], r["map"])
                    add(method, "authors", "haofanwang/Score-CAM", case, "map", d, AUTHORS_TOL)
    check_cam_family_peers.rows(MODELS, build, maxdiff, reldiff, add)
    if authors_cls is None:
        print("note: .peers/Score-CAM/cam/scorecam.py not found; the authors' Score-CAM was not run")

    failed = 0
    print(f"{'method':<10} {'variant':<15} {'peer':<21} {'case':<38} {'compared':<24} {'max diff':>10} "
          f"{'tol':>8}  result")
    for method, variant, peer, case, what, diff, tol in rows:
        if tol is None:
            verdict = "info (torchcam bug, see ref_methods.py)"
        elif diff <= tol:
            verdict = "OK"
        else:
            verdict = "NOT OK"
            failed += 1
        print(f"{method:<10} {variant:<15} {peer:<21} {case:<38} {what:<24} {diff:>10.3g} "
              f"{'-' if tol is None else format(tol, '.0e'):>8}  {verdict}")
    print("summary: max abs diff per (method, variant, peer, compared)")
    summary = {}
    for method, variant, peer, case, what, diff, tol in rows:
        key = (method, variant, peer, what)
        summary[key] = max(summary.get(key, 0.0), diff)
    for (method, variant, peer, what), diff in summary.items():
        print(f"  {method:<10} {variant:<15} {peer:<21} {what:<24} {diff:.3g}")
    print("Result =", "FAIL" if failed else "PASS", f"({failed} over tolerance)" if failed else "")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
