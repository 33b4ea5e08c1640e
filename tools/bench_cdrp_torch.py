#!/usr/bin/python3
"""What Score-CDRP costs in plain PyTorch, run the way researchers run it: one
image at a time, the CIC pass (one masked forward per channel of every conv
layer, docs/methods.md#score-cdrp) and then T gate-optimisation steps (T+1 forwards, T
gate backwards), timed separately. The peer number for attrib's
`score-cdrp` timings (tools/ref_cdrp.py is the code that runs).

  /usr/bin/python3 tools/bench_cdrp_torch.py --threads 2            # VGG16 mini widths, 128x128
  /usr/bin/python3 tools/bench_cdrp_torch.py --full --threads 16    # VGG16 at 224 (slow on a CPU)
  ... --device cuda                                                 # where torch has CUDA

Random weights (tools/prng.py), PRNG inputs; timings do not depend on the
values except through the number of flat channels, which is printed.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prng  # noqa: E402
import ref_cdrp  # noqa: E402
import vgg_torch  # noqa: E402

SEED = 20241
MINI = ("vgg16", [8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 64], [256, 256], 10, 128, 4)
FULL = ("vgg16", None, [4096, 4096], 1000, 224, 7)


def forward_macs(model, hw):
    """Multiply-accumulates of one forward (conv + linear), from the layer shapes."""
    macs, h = 0, hw
    for m in model.features:
        if isinstance(m, torch.nn.Conv2d):
            macs += m.in_channels * m.out_channels * 9 * h * h
        elif isinstance(m, torch.nn.MaxPool2d):
            h //= 2
    return macs + sum(m.in_features * m.out_features for m in model.classifier if isinstance(m, torch.nn.Linear))


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="VGG16 widths at 224x224, 1000 classes")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--steps", type=int, default=100, help="T (zhu2024: 100)")
    ap.add_argument("--mask-batch", type=int, default=ref_cdrp.MASK_BATCH, help="masked inputs per CIC forward")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ref_cdrp.MASK_BATCH = args.mask_batch
    arch, widths, hidden, nc, hw, avgpool = FULL if args.full else MINI
    widths = widths or prng.standard_widths(arch)
    model = vgg_torch.build_vgg(arch, prng.random_vgg_state(arch, widths, hidden, nc, avgpool, SEED), avgpool)
    model.to(args.device)
    n_gates = vgg_torch.gate_layout(model)[1]
    xs = torch.from_numpy(prng.fill("input", SEED, (args.images, 3, hw, hw), 2.0)).to(args.device)
    gmac = forward_macs(model, hw) / 1e9
    print(f"{arch} widths {widths[0]}..{widths[-1]} ({n_gates} gates) at {hw}x{hw}, {gmac:.3f} GMAC/forward; "
          f"torch {torch.__version__}, {args.threads} threads, {args.device}, float32, "
          f"mask batch {args.mask_batch}, T {args.steps}")
    o = ref_cdrp.preset("zhu2024", True, iterations=args.steps)
    cic_s, opt_s = [], []
    for b in range(args.images):
        x = xs[b:b + 1]
        with torch.no_grad():
            cls = int(torch.argmax(vgg_torch.forward(model.float(), x)[0][0]))
        sync(args.device)
        t0 = time.perf_counter()
        alpha, flat, _ = ref_cdrp.cic_scores(model, x, cls, torch.float32)
        sync(args.device)
        t1 = time.perf_counter()
        r = ref_cdrp.cdrp(model, x, o, torch.float32, alpha=alpha)  # the optimisation alone
        sync(args.device)
        t2 = time.perf_counter()
        cic_s.append(t1 - t0)
        opt_s.append(t2 - t1)
        n_flat = int(flat.sum())
        cic_fw = 1 + (n_gates - n_flat) + (1 if n_flat else 0)
        print(f"image {b}: class {cls}; CIC {t1 - t0:.2f} s ({cic_fw} forwards, {n_flat} flat channels, "
              f"{2 * cic_fw * gmac / (t1 - t0):.1f} GFLOP/s); optimisation {t2 - t1:.2f} s "
              f"({args.steps + 1} forwards + {args.steps} backwards, kept step {r.kept_iteration})")
    n = len(cic_s)
    print(f"mean per image: CIC {sum(cic_s) / n:.2f} s, optimisation {sum(opt_s) / n:.2f} s, "
          f"Score-CDRP {(sum(cic_s) + sum(opt_s)) / n:.2f} s")


if __name__ == "__main__":
    main()
