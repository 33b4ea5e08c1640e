#!/usr/bin/python3
"""Side-by-side forward timing: attrib vs PyTorch on the same machine in one
run (VGG16 at 224 with random weights, and VGG16-mini), on the CPU or a GPU.

  /usr/bin/python3 tools/bench_cpu_peer.py [--threads N] [--batch 1,8] [--min-time S]
  /usr/bin/python3 tools/bench_cpu_peer.py --device cuda --precision fp32 --batch 1,8,32

Prints ms/image for both and the ratio (PyTorch / attrib: > 1 means attrib is
faster). Both use random weights of the same shapes; on the CPU the same
thread count. On a GPU like is compared with like (docs/methods.md#cost-arithmetic): fp32 runs
PyTorch with cuDNN/cuBLAS TF32 disabled, tf32 with it enabled, against
attrib's --backend cuda --precision of the same name; cudnn.benchmark picks
cuDNN's fastest algorithm first.
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


def time_torch(net, batch, min_time, device):
    state = prng.random_vgg_state(net["arch"], net["widths"], net["hidden"], net["classes"], net["avgpool"], 1)
    model = vgg_torch.build_vgg(net["arch"], state, net["avgpool"]).to(device)
    x = torch.from_numpy(prng.fill("input", 1, (batch, 3, net["size"], net["size"]), 2.0)).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.no_grad():
        vgg_torch.forward(model, x, None, ())  # warm-up (and cuDNN's algorithm search)
        sync()
        iters, t0 = 0, time.perf_counter()
        while True:
            vgg_torch.forward(model, x, None, ())
            iters += 1
            sync()
            t = time.perf_counter() - t0
            if t >= min_time:
                break
    return 1e3 * t / iters / batch


def time_attrib(nets, batches, threads, min_time, device, precision):
    cmd = [os.path.join(ROOT, "attrib"), "bench", "--backend", device, "--precision", precision, "--json",
           "--passes", "forward", "--nets", nets, "--batch", batches, "--min-time", str(min_time),
           "--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {(r["net"], r["batch"]): r["ms_per_image"] for r in map(json.loads, out.splitlines())}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--min-time", type=float, default=3.0)
    ap.add_argument("--nets", default="vgg16,mini")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--precision", choices=["fp32", "tf32"], default="fp32", help="GPU only")
    args = ap.parse_args()
    if args.device == "cpu" and args.precision != "fp32":
        ap.error("--precision tf32 compares GPU tensor-core paths; the CPU runs fp32")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: PyTorch sees no GPU")
    torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
    ours = time_attrib(args.nets, args.batch, args.threads, args.min_time, args.device, args.precision)
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{args.threads} threads"
    print(f"torch {torch.__version__}, {where}, {args.precision}, no grad")
    print(f"{'net':8} {'batch':>5} {'attrib ms/img':>14} {'torch ms/img':>13} {'torch/attrib':>13}")
    for name in args.nets.split(","):
        net = VGG16 if name == "vgg16" else MINI
        for b in map(int, args.batch.split(",")):
            theirs = time_torch(net, b, args.min_time, args.device)
            mine = ours[(name, b)]
            print(f"{name:8} {b:5d} {mine:14.2f} {theirs:13.2f} {theirs / mine:13.2f}")


if __name__ == "__main__":
    main()
