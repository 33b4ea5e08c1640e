#!/usr/bin/python3
"""Side-by-side CPU forward timing: attrib's CPU backend vs PyTorch CPU on the
same machine in one run (VGG16 at 224 with random weights, and VGG16-mini).

  /usr/bin/python3 tools/bench_cpu_peer.py [--threads N] [--batch 1,8] [--min-time S]

Prints ms/image for both and the ratio (PyTorch / attrib: > 1 means attrib is
faster). Both use the same thread count and random weights of the same shapes.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prng  # noqa: E402
import vgg_torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINI = dict(arch="vgg16", widths=[8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 64], hidden=[256, 256],
            classes=10, size=128, avgpool=4)
VGG16 = dict(arch="vgg16", widths=prng.standard_widths("vgg16"), hidden=[4096, 4096], classes=1000, size=224,
             avgpool=7)


def time_torch(net, batch, min_time):
    state = prng.random_vgg_state(net["arch"], net["widths"], net["hidden"], net["classes"], net["avgpool"], 1)
    model = vgg_torch.build_vgg(net["arch"], state, net["avgpool"])
    x = torch.from_numpy(prng.fill("input", 1, (batch, 3, net["size"], net["size"]), 2.0))
    with torch.no_grad():
        model.features(x)  # warm-up
        iters, t0 = 0, time.perf_counter()
        while True:
            vgg_torch.forward(model, x, None, ())
            iters += 1
            t = time.perf_counter() - t0
            if t >= min_time:
                break
    return 1e3 * t / iters / batch


def time_attrib(nets, batches, threads, min_time):
    cmd = [os.path.join(ROOT, "attrib"), "bench", "--backend", "cpu", "--json", "--passes", "forward",
           "--nets", nets, "--batch", batches, "--min-time", str(min_time), "--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {(r["net"], r["batch"]): r["ms_per_image"] for r in map(json.loads, out.splitlines())}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--min-time", type=float, default=3.0)
    ap.add_argument("--nets", default="vgg16,mini")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ours = time_attrib(args.nets, args.batch, args.threads, args.min_time)
    print(f"torch {torch.__version__}, {args.threads} threads, float32, no grad")
    print(f"{'net':8} {'batch':>5} {'attrib ms/img':>14} {'torch ms/img':>13} {'torch/attrib':>13}")
    for name in args.nets.split(","):
        net = VGG16 if name == "vgg16" else MINI
        for b in map(int, args.batch.split(",")):
            theirs = time_torch(net, b, args.min_time)
            mine = ours[(name, b)]
            print(f"{name:8} {b:5d} {mine:14.2f} {theirs:13.2f} {theirs / mine:13.2f}")


if __name__ == "__main__":
    main()
