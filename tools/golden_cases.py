"""What the method goldens share (tools/make_method_goldens.py,
make_relevance_goldens.py, make_perturb_goldens.py): the small random models
drawn from the shared PRNG (tools/prng.py; the C tests rebuild them from a
case's meta.json through host/model/random_model.c), their input, and the
command line that writes one folder per case plus cases.txt."""
import argparse
import os

import torch

import prng
import resnet_torch
import vgg_torch

SEED = 20241
# name: arch, widths, hidden, classes, h, w, avgpool. ResNet widths = stem, then
# each stage's planes (hidden and avgpool unused). Flat (all-zero) channels
# with this seed: vgg11_48x40 features.12 (3 of 8), features.17 (1 of 8);
# vgg16_mini features.29 and features.30 (7 of 64 each).
MODELS = {
    "vgg11_48x40": ("vgg11", [4, 6, 8, 8, 8, 8, 8, 8], [16, 12], 8, 48, 40, 2),
    "vgg11_32": ("vgg11", [4, 6, 8, 8, 8, 8, 8, 8], [16, 12], 8, 32, 32, 1),
    "vgg11_32p2": ("vgg11", [4, 6, 8, 8, 8, 8, 8, 8], [16, 12], 8, 32, 32, 2),
    "vgg16_mini": ("vgg16", [8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 64], [256, 256], 10, 128, 128, 4),
    "resnet18_64": ("resnet18", [8, 8, 12, 16, 24], None, 6, 64, 64, 1),
    "resnet50_64": ("resnet50", [8, 4, 6, 8, 8], None, 5, 64, 56, 1),
    "resnet18_32": ("resnet18", [8, 8, 12, 16, 24], None, 6, 32, 32, 1),  # FAFRP's N slices stay small
}


def build(model_name, dtype=None):
    """(model, x): the case's random model (vgg_torch / resnet_torch, eval
    mode; in dtype unless None) and its input prng.fill("input", SEED,
    (1,3,H,W), 2.0)."""
    arch, widths, hidden, nc, h, w, avgpool = MODELS[model_name]
    if arch.startswith("resnet"):
        model = resnet_torch.build_resnet(arch, prng.random_resnet_state(arch, widths, nc, SEED))
    else:
        model = vgg_torch.build_vgg(arch, prng.random_vgg_state(arch, widths, hidden, nc, avgpool, SEED), avgpool)
    x = torch.from_numpy(prng.fill("input", SEED, (1, 3, h, w), 2.0))
    return (model.eval(), x) if dtype is None else (model.to(dtype).eval(), x.to(dtype))


def meta_model(model_name):
    """The model part of a case's meta.json."""
    arch, widths, hidden, nc, h, w, avgpool = MODELS[model_name]
    return dict(arch=arch, widths=widths, hidden=hidden, classes=nc, h=h, w=w, avgpool=avgpool, seed=SEED)


def main(doc, default_out, cases, run_case, threads=2):
    """--out DIR [--only a,b]: run_case(out, case) for each case, then
    DIR/cases.txt listing every case (the C tests walk it)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=default_out)
    ap.add_argument("--only", default=None, help="comma-separated case names")
    args = ap.parse_args()
    torch.set_num_threads(threads)
    only = set(args.only.split(",")) if args.only else None
    os.makedirs(args.out, exist_ok=True)
    for case in cases:
        if not only or case[0] in only:
            run_case(args.out, case)
    with open(os.path.join(args.out, "cases.txt"), "w") as f:
        f.write("".join(case[0] + "\n" for case in cases))
