#!/usr/bin/python3
"""Input-gradient methods' speed, side by side on the same machine in one run:
attrib (./attrib bench --method M, at its defaults) against captum 0.7.0 on
the same network shape (random weights) and inputs, one image per call as
captum is used: InputXGradient, IntegratedGradients (50 Gauss-Legendre steps,
black baseline; all steps in one batch, or --ig-batch), NoiseTunnel(Saliency)
(smoothgrad, 25 samples, sigma 0.15 of the range, abs; all samples in one
batch) and GuidedGradCam (features.29, bilinear). The two sides alternate
method by method so both see the same machine load.

  /usr/bin/python3 -m pip install --no-deps --target .peers captum==0.7.0
  PYTHONPATH=.peers /usr/bin/python3 tools/bench_grad_peers.py [--net mini|vgg16] [--images N] [--threads N]

Prints seconds per image for each side, the ratio captum / attrib (> 1: attrib
is faster) and attrib's forwards + backwards per map.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prng  # noqa: E402
from bench_scorecam_peers import NETS, ROOT, attrib_bench, build  # noqa: E402

METHODS = ("input-x-gradient", "integrated-gradients", "smoothgrad", "guided-gradcam")


def captum_once(method, model, x, cls, ig_batch):
    from captum.attr import GuidedGradCam, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency
    x = x.clone().requires_grad_(True)
    if method == "input-x-gradient":
        return InputXGradient(model).attribute(x, target=cls)
    if method == "integrated-gradients":
        xb = torch.tensor([-m / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])[None, :, None, None]
        return IntegratedGradients(model).attribute(x, baselines=xb.expand_as(x), target=cls, n_steps=50,
                                                    method="gausslegendre", internal_batch_size=ig_batch)
    if method == "smoothgrad":
        sd = 0.15 * float(x.max() - x.min())
        return NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=25, stdevs=sd, target=cls,
                                                      abs=True)
    return GuidedGradCam(model, model.features[29]).attribute(x, target=cls, interpolate_mode="bilinear")


def time_captum(method, model, xs, ig_batch):
    """Wall and CPU (every thread's) seconds per image, after one untimed
    run on the first image (the first method of a run otherwise pays
    PyTorch's warm-up: SmoothGrad timed first took 0.15 s, second 0.08-0.11)."""
    with torch.no_grad():
        cls = int(model(xs[0]).argmax(1))
    captum_once(method, model, xs[0], cls, ig_batch)
    t0, c0 = time.perf_counter(), time.process_time()
    for x in xs:
        with torch.no_grad():
            cls = int(model(x).argmax(1))  # the class, as the engine explains the predicted one
        captum_once(method, model, x, cls, ig_batch)
    return (time.perf_counter() - t0) / len(xs), (time.process_time() - c0) / len(xs)


def time_attrib(method, net, images, threads):
    cmd = [os.path.join(ROOT, "attrib"), "bench", "--json", "--method", method, "--images", str(images),
           "--backend", "cpu", "--nets", net]
    if threads:
        cmd += ["--threads", str(threads)]
    out, cpu = attrib_bench(cmd, images)
    out["cpu_s_per_image"] = cpu
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", default="mini", choices=NETS)
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--ig-batch", type=int, default=None, help="captum's internal_batch_size (default: all 50)")
    ap.add_argument("--methods", default=",".join(METHODS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, n = build(args.net, "cpu")
    for mod in model.modules():  # captum's guided backprop hooks ReLU modules
        if isinstance(mod, torch.nn.ReLU):
            mod.inplace = False
    xs = [torch.from_numpy(prng.fill("input", 7 + i, (1, 3, n["size"], n["size"]), 2.0)) for i in range(args.images)]
    print(f"{args.net}, {args.images} images, torch {torch.__version__}, {args.threads} threads, "
          f"captum IG internal_batch_size {args.ig_batch}")
    print(f"{'method':22} {'attrib s/image':>14} {'captum s/image':>14} {'captum/attrib':>13} "
          f"{'attrib cpu s':>12} {'captum cpu s':>12} {'cpu captum/attrib':>17} {'attrib F+B/map':>15}")
    for method in args.methods.split(","):
        a = time_attrib(method, args.net, args.images, args.threads)
        c, cc = time_captum(method, model, xs, args.ig_batch)
        print(f"{method:22} {a['s_per_image']:14.3f} {c:14.3f} {c / a['s_per_image']:13.2f} "
              f"{a['cpu_s_per_image']:12.3f} {cc:12.3f} {cc / a['cpu_s_per_image']:17.2f} "
              f"{a['forwards_per_image']:7.0f} + {a['backwards_per_image']:.0f}", flush=True)


if __name__ == "__main__":
    main()
