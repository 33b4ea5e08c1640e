#!/usr/bin/python3
"""RISE and occlusion speed, side by side on the same machine in one run:
attrib (./attrib bench --method rise|occlusion) against TorchRay's rise and
captum's Occlusion on the same network shape (random weights) and settings.

  PYTHONPATH=.peers /usr/bin/python3 tools/bench_perturb_peers.py [--net mini|vgg16] [--images N]
      [--rise-n N] [--window PX --stride PX] [--threads N] [--methods rise,occlusion]

TorchRay runs its default batch of 32 masks, generating its masks on the fly
(as users run it); captum runs perturbations_per_eval=1 (its default) and 32.
Prints seconds per image (the fastest of --repeats interleaved runs) and
peer / attrib (> 1: attrib is faster).
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prng  # noqa: E402
from bench_scorecam_peers import NETS, ROOT, attrib_bench, build  # noqa: E402


def time_attrib(net, method, images, threads, extra):
    cmd = [os.path.join(ROOT, "attrib"), "bench", "--json", "--method", method, "--images", str(images),
           "--backend", "cpu", "--nets", net, "--threads", str(threads)] + extra
    line, cpu = attrib_bench(cmd, images)
    return line["s_per_image"], cpu


def time_torchray(model, xs, n):
    from torchray.attribution.rise import rise
    t0, c0 = time.perf_counter(), time.process_time()
    for x in xs:
        rise(model, x, num_masks=n, num_cells=7, p=0.5, batch_size=32)
    return (time.perf_counter() - t0) / len(xs), (time.process_time() - c0) / len(xs)


def time_captum(model, xs, window, stride, per_eval):
    from captum.attr import Occlusion
    fwd = lambda z: F.softmax(model(z), dim=1)  # noqa: E731
    occ = Occlusion(fwd)
    t0, c0 = time.perf_counter(), time.process_time()
    for x in xs:
        with torch.no_grad():
            c = int(model(x).argmax())
        occ.attribute(x, sliding_window_shapes=(3, window, window), strides=(3, stride, stride), baselines=0.0,
                      target=c, perturbations_per_eval=per_eval)
    return (time.perf_counter() - t0) / len(xs), (time.process_time() - c0) / len(xs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", default="mini", choices=NETS)
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--rise-n", type=int, default=4000)
    ap.add_argument("--window", type=int, default=0, help="occlusion window (default 15 at 224, scaled)")
    ap.add_argument("--stride", type=int, default=0, help="occlusion stride (default 8 at 224, scaled)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--methods", default="rise,occlusion")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--captum-per-eval", type=lambda v: [int(x) for x in v.split(",")], default=[1, 32])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, n = build(args.net, "cpu")
    size = n["size"]
    window = args.window or max(1, round(15 * size / 224))
    stride = args.stride or max(1, round(8 * size / 224))
    xs = [torch.from_numpy(prng.fill("input", 7 + i, (1, 3, size, size), 2.0)) for i in range(args.images)]
    print(f"{args.net} at {size}, {args.images} images, {args.threads} threads, torch {torch.__version__}")
    print(f"{'method':34} {'tool':34} {'s/image':>9} {'peer/attrib':>12} {'cpu s/image':>12} {'cpu peer/attrib':>16}")
    methods = args.methods.split(",")
    # attrib and the peers alternate, repeats times, and the fastest run of
    # each counts: on a shared machine the load moves between runs
    rows = []
    if "rise" in methods:
        label = f"RISE N={args.rise_n} s=7 p=0.5"
        rows.append((label, "attrib", lambda: time_attrib(args.net, "rise", args.images, args.threads,
                                                          ["--rise-n", str(args.rise_n)])))
        rows.append((label, "TorchRay rise (batch 32)", lambda: time_torchray(model, xs, args.rise_n)))
    if "occlusion" in methods:
        label = f"occlusion {window}/{stride} px"
        rows.append((label, "attrib", lambda: time_attrib(args.net, "occlusion", args.images, args.threads,
                                                          ["--occlusion-window", str(window),
                                                           "--occlusion-stride", str(stride)])))
        for per_eval in args.captum_per_eval:
            rows.append((label, f"captum Occlusion (per_eval {per_eval})",
                         lambda pe=per_eval: time_captum(model, xs, window, stride, pe)))
    best = [(float("inf"), float("inf"))] * len(rows)  # fastest wall, least CPU
    with torch.no_grad():
        for _ in range(args.repeats):
            for i, (_, _, fn) in enumerate(rows):
                w, c = fn()
                best[i] = (min(best[i][0], w), min(best[i][1], c))
    ours = {}
    for (label, tool, _), (t, c) in zip(rows, best):
        if tool == "attrib":
            ours[label] = (t, c)
        print(f"{label:34} {tool:34} {t:9.3f} {t / ours[label][0]:12.2f} {c:12.3f} {c / ours[label][1]:16.2f}",
              flush=True)

if __name__ == "__main__":
    main()
