#!/usr/bin/python3
"""Goldens for host/metrics/metrics.c (tests/test_metrics.c): torchvision's
gaussian_blur, the RISE insertion baseline of docs/methods.md#deletion-and-insertion.

Writes tests/goldens/metrics/
  blur_in_<C>x<H>x<W>.npy                     float32 CHW input (tools/prng.py)
  blur_out_<C>x<H>x<W>_k<K>_s<S>.npy          torchvision.transforms.functional
                                              .gaussian_blur(input, K, S), float32
Run with Debian's interpreter (torch + torchvision):
  /usr/bin/python3 tools/make_metric_goldens.py                 # regenerate
  /usr/bin/python3 tools/make_metric_goldens.py --live-blur IN OUT K SIGMA [K SIGMA ...]
      # used by the C live test: OUT holds the blurs of IN (C,H,W) stacked, (cases,C,H,W)
"""
import argparse
import os
import sys

import numpy as np
import torch
import torchvision.transforms.functional as TF

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prng  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "goldens", "metrics")
SEED = 4
# (C, H, W, ksize, sigma): the RISE setting, and small kernels on shapes where
# the pad is close to the side (torch's reflect needs pad < side).
CASES = [(3, 13, 17, 11, 5.0), (1, 7, 9, 5, 1.5), (2, 5, 4, 3, 0.8)]


def blur(x, ksize, sigma):
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return TF.gaussian_blur(t, [ksize, ksize], [float(sigma), float(sigma)]).numpy().astype(np.float32)


def sigma_tag(s):
    return ("%g" % s).replace(".", "p")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=OUT)
    p.add_argument("--live-blur", nargs="+", metavar="ARG", help="IN OUT K SIGMA [K SIGMA ...]")
    a = p.parse_args(argv)
    if a.live_blur:
        if len(a.live_blur) < 4 or len(a.live_blur) % 2:
            p.error("--live-blur IN OUT K SIGMA [K SIGMA ...]")
        src, dst, pairs = a.live_blur[0], a.live_blur[1], a.live_blur[2:]
        x = np.load(src)
        np.save(dst, np.stack([blur(x, int(pairs[i]), float(pairs[i + 1])) for i in range(0, len(pairs), 2)]))
        return 0
    os.makedirs(a.out, exist_ok=True)
    for c, h, w, k, s in CASES:
        name = "%dx%dx%d" % (c, h, w)
        x = prng.fill("blur_in_" + name, SEED, (c, h, w), 0.5, 0.5)  # values in [0,1)
        np.save(os.path.join(a.out, "blur_in_%s.npy" % name), x)
        np.save(os.path.join(a.out, "blur_out_%s_k%d_s%s.npy" % (name, k, sigma_tag(s))), blur(x, k, s))
        print("blur %s k=%d sigma=%g" % (name, k, s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
