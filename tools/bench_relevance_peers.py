#!/usr/bin/python3
"""Relevance-method speed, side by side on the same machine in one run:
attrib (./attrib bench --method eb|c-eb|lrp|fafrp) against TorchRay's
excitation_backprop and contrastive_excitation_backprop and zennit's
EpsilonGammaBox LRP on the same network shape (random weights) and inputs.
FAFRP has no peer; captum's InputXGradient (its cost: 1 F + 1 B) stands in.

  /usr/bin/python3 -m pip install --no-deps --target .peers torchray zennit==0.5.1 captum==0.7.0
  PYTHONPATH=.peers /usr/bin/python3 tools/bench_relevance_peers.py [--net mini|vgg16] [--images N]
      [--threads N]

Prints seconds per image for each pair and the ratio peer / attrib (> 1:
attrib is faster), with attrib's forwards per map. Peers run one image per
call (their usual use); attrib batches the images.
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
import ref_methods  # noqa: E402
import vgg_torch  # noqa: E402
from bench_scorecam_peers import NETS as ALL_NETS, ROOT  # noqa: E402

NETS = {k: ALL_NETS[k] for k in ("mini", "vgg16")}  # the random VGGs
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def build(net):
    n = NETS[net]
    state = prng.random_vgg_state("vgg16", n["widths"], n["hidden"], n["classes"], n["avgpool"], 1)
    model = ref_methods.TorchvisionVGG(vgg_torch.build_vgg("vgg16", state, n["avgpool"])).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, n


def timed(fn, xs):
    fn(xs[0])  # warm-up
    t0 = time.perf_counter()
    for x in xs:
        fn(x)
    return (time.perf_counter() - t0) / len(xs)


def peer_eb(model):
    from torchray.attribution.excitation_backprop import excitation_backprop

    def run(x):
        c = int(model(x).argmax())
        excitation_backprop(model, x, c, saliency_layer="features.23")
    return run


def peer_ceb(model):
    from torchray.attribution.excitation_backprop import contrastive_excitation_backprop

    def run(x):
        c = int(model(x).argmax())
        contrastive_excitation_backprop(model, x, c, saliency_layer="features.23", contrast_layer="classifier.4",
                                        classifier_layer="classifier.6")
    return run


def peer_lrp(model):
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonGammaBox

    def run(x):
        mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        std = torch.tensor(STD).view(1, 3, 1, 1)
        comp = EpsilonGammaBox(low=((0 - mean) / std).expand_as(x), high=((1 - mean) / std).expand_as(x))
        with Gradient(model=model, composite=comp) as attributor:
            y, _ = attributor(x.clone().requires_grad_(True), lambda out: out * (out == out.max()))
    return run


def peer_ixg(model):
    from captum.attr import InputXGradient
    ixg = InputXGradient(model)

    def run(x):
        c = int(model(x).argmax())
        ixg.attribute(x.clone().requires_grad_(True), target=c)
    return run


def time_attrib(net, method, images, threads):
    cmd = [os.path.join(ROOT, "attrib"), "bench", "--json", "--method", method, "--images", str(images),
           "--backend", "cpu", "--nets", net, "--threads", str(threads)]
    r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
    return r["s_per_image"], r["forwards_per_image"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", default="mini", choices=NETS)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, n = build(args.net)
    xs = [torch.from_numpy(prng.fill("input", 7 + i, (1, 3, n["size"], n["size"]), 2.0)) for i in range(args.images)]
    print(f"relevance methods on {args.net} ({args.images} images, torch {torch.__version__}, CPU, "
          f"{args.threads} threads)")
    print(f"{'method':8} {'peer':28} {'attrib s/img':>12} {'peer s/img':>11} {'peer/attrib':>12}")
    for method, peer, make in (("eb", "TorchRay excitation_backprop", peer_eb),
                               ("c-eb", "TorchRay contrastive EB", peer_ceb),
                               ("lrp", "zennit EpsilonGammaBox", peer_lrp),
                               ("fafrp", "captum InputXGradient", peer_ixg)):
        ours, _ = time_attrib(args.net, method, args.images, args.threads)
        try:
            theirs = timed(make(model), xs)
            print(f"{method:8} {peer:28} {ours:12.4f} {theirs:11.4f} {theirs / ours:12.2f}")
        except ImportError as e:
            print(f"{method:8} {peer:28} {ours:12.4f} skipped: {e}")


if __name__ == "__main__":
    main()
