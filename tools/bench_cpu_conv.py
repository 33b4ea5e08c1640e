#!/usr/bin/python3
"""VGG16's 13 convolutions (3x3, stride 1, pad 1): attrib's CPU backend vs
PyTorch CPU (oneDNN), same machine, same threads, same run.

    gcc -std=c11 -D_GNU_SOURCE -O3 -march=native -fopenmp -Ihost \
        -o /tmp/bench_conv tools/bench_conv.c host/cpu/conv.c host/cpu/sgemm.c -lm
    /usr/bin/python3 tools/bench_cpu_conv.py --bench /tmp/bench_conv [--threads 2]
        [--batch 1] [--size 224] [--rounds 5] [--reps 3]

The machine may be shared, so the two are timed in alternating rounds and
each layer keeps its best time over all rounds. Prints a markdown table.
"""
import argparse
import os
import subprocess
import time

import torch

VGG16 = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
         (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
POOL_AFTER = [0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1]


def layer_shapes(size):
    h, out = size, []
    for (c, k), pool in zip(VGG16, POOL_AFTER):
        out.append((c, k, h))
        if pool:
            h //= 2
    return out


def torch_times(shapes, batch, reps):
    times = []
    with torch.no_grad():
        for c, k, h in shapes:
            conv = torch.nn.Conv2d(c, k, 3, 1, 1)
            x = torch.randn(batch, c, h, h)
            conv(x)
            best = float("inf")
            for _ in range(reps):
                t = time.perf_counter()
                conv(x)
                best = min(best, time.perf_counter() - t)
            times.append(best)
    return times


def ours_times(bench, threads, batch, size, reps):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([bench, "-n", str(batch), "-s", str(size), "-r", str(reps)], env=env,
                         check=True, capture_output=True, text=True).stdout
    times = []
    for line in out.splitlines():
        f = line.split()
        if f and f[0].isdigit():
            times.append(float(f[4]) / 1e3)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default="/tmp/bench_conv", help="built tools/bench_conv.c")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shapes = layer_shapes(args.size)
    best_t = [float("inf")] * len(shapes)
    best_o = [float("inf")] * len(shapes)
    for _ in range(args.rounds):
        best_t = [min(a, b) for a, b in zip(best_t, torch_times(shapes, args.batch, args.reps))]
        best_o = [min(a, b) for a, b in
                  zip(best_o, ours_times(args.bench, args.threads, args.batch, args.size, args.reps))]
    print(f"VGG16 convolutions, batch {args.batch}, {args.size}x{args.size}, {args.threads} threads, "
          f"torch {torch.__version__}, best of {args.rounds} rounds x {args.reps} reps\n")
    print("| layer | C -> K | HxW | attrib ms | attrib GFLOP/s | torch ms | torch GFLOP/s | attrib/torch |")
    print("|---|---|---|---|---|---|---|---|")
    total_flops = 0.0
    for i, ((c, k, h), o, t) in enumerate(zip(shapes, best_o, best_t)):
        flops = 2.0 * args.batch * c * k * 9 * h * h
        total_flops += flops
        print(f"| {i + 1} | {c} -> {k} | {h}x{h} | {o * 1e3:.2f} | {flops / o / 1e9:.1f} | "
              f"{t * 1e3:.2f} | {flops / t / 1e9:.1f} | {o / t:.2f} |")
    so, st = sum(best_o), sum(best_t)
    print(f"| total | | | {so * 1e3:.1f} | {total_flops / so / 1e9:.1f} | {st * 1e3:.1f} | "
          f"{total_flops / st / 1e9:.1f} | {so / st:.2f} |")


if __name__ == "__main__":
    main()
