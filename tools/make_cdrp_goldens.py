#!/usr/bin/python3
"""Goldens for CDRP / Score-CDRP, path Score-CAM and the pathway gradient
(docs/methods.md#cdrp to #pathway-gradient) on small random VGGs (tools/prng.py = host/model/random_model.c),
computed by tools/ref_cdrp.py. One folder per case under tests/goldens/cdrp:

  meta.json                net (arch widths hidden classes h w avgpool seed),
                           batch, n_gates, preset and every CDRP option
                           ("options"), the Score-CAM layer, rates and prune
                           variants, and per image (lists of length batch):
                           cls, orig_prob, kept_iteration, path_class,
                           path_prob, initial_loss, final_loss, step_classes,
                           forwards (as at_cdrp counts them), zeros (gates
                           clamped to 0), flat / zero_score of the CIC pass,
                           the pruned networks' classes, decision margins;
                           the float32-vs-float64 check results
  gates.npy     [n,G]      the path v after `iterations` steps (inputs:
                           prng.fill("input", seed, (n,3,h,w), 2.0))
  alpha.npy     [n,G]      CIC scores (Score-CDRP cases)
  losses.npy    [n,T+1]    objective at Λ_t, t = 0..T
  pathway_r0.50.npy [n,H,W]         pathway gradient, per-layer pruning, class cls
  pathway_global_r0.50.npy, pathway_values_r0.50.npy   --prune global,
                           --keep-gate-values (where the case lists them)
  path_scorecam.npy [n,H,W], path_scorecam_weights.npy [n,C]  class cls

The pathway and path Score-CAM goldens start from gates.npy as stored
(float32): a C test feeds that file to at_prune_gates / its path Score-CAM and
compares without depending on the optimisation.

Each case runs in float64 (the golden) and in float32; the float32 run must
keep the same kept_iteration, per-step classes and flat channels, gates within
GATES_ATOL, maps within MAP_ATOL, and the decisions must keep a margin (see
CLASS_GAP_MIN), else the case is ill-conditioned and the script stops (choose
another case; --dry-run lists them all). Mostly T = 10: the optimisation
amplifies rounding differences; three cases run a preset's full T.
Run: /usr/bin/python3 tools/make_cdrp_goldens.py [--only NAME,...]
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prng  # noqa: E402
import ref_cdrp  # noqa: E402
import resnet_torch  # noqa: E402
import vgg_torch  # noqa: E402

GATES_ATOL = 1e-4   # float32 vs float64 gates after T steps (the brief's bar for a well-conditioned case)
ALPHA_ATOL = 1e-5   # CIC probabilities: one forward each, no amplification
LOSS_RTOL = 1e-5    # objective values
MAP_ATOL = 1e-4     # [0,1] maps (pathway gradient, path Score-CAM)
# Decision margins in the float64 run: a float32 engine must take the same
# decisions, so a case is rejected when its top-2 logits at some step come closer
# than CLASS_GAP_MIN, or a keep comparison (loss <= minimum) is decided by less
# than KEEP_GAP_FACTOR times the largest float32-vs-float64 loss difference of
# that image. (With the soft target the first steps lower the loss by only
# lr * gamma^2 * sum w^2, a few 1e-6 on these small nets, so a fixed bar would
# reject every soft zhu2024 case.) The pruning cut margin (the gates either side
# of floor(rate*C), exact ties of gates clamped to 0 excluded) is recorded, not
# enforced: meta "margins".cut_gap below ~1e-5 means a C test must prune
# gates.npy, not its own gates, to compare pathway maps.
CLASS_GAP_MIN = 1e-3
KEEP_GAP_FACTOR = 5.0

NETS = {
    # name: arch, widths, hidden, classes, h, w, avgpool, Score-CAM layer (last conv's ReLU)
    "vgg11_tiny": ("vgg11", [4, 6, 8, 8, 8, 8, 8, 8], [16, 12], 8, 32, 32, 1, "features.19"),
    "vgg16_mini": ("vgg16", [8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 64], [32, 32], 10, 64, 64, 2,
                   "features.29"),
    # ten channels in conv 0: floor(rate * 10) is an integer for rates 0.3/0.7/0.9, where the
    # rounding of a float32 rate matters (floor(0.7f * 10) = 6 but floor(0.7 * 10) = 7)
    "vgg11_ten": ("vgg11", [10, 6, 8, 8, 8, 8, 8, 8], [16, 12], 8, 32, 32, 1, "features.19"),
    # ResNets: widths = stem, each stage's planes; gates also before the adds; layer4 the CAM layer
    "resnet18_tiny": ("resnet18", [4, 4, 6, 8, 8], None, 6, 48, 48, 1, "layer4"),
    "resnet50_tiny": ("resnet50", [4, 2, 3, 4, 4], None, 5, 48, 40, 1, "layer4"),
}
RATES = (0.3, 0.5, 0.7, 0.9)  # docs/methods.md#pathway-gradient defaults



def case(name, net, batch, seed, preset, score, covers, prune=(), rates=(0.5,), **over):
    """One golden: `over` overrides the preset's options; pathway maps at
    `rates` for per-layer pruning plus the `prune` variants (global, values)."""
    return dict(name=name, net=net, batch=batch, seed=seed, preset=preset, score=score, covers=covers,
                prune=prune, rates=rates, over=over)


CASES = [
    case("cdrp_zhu", "vgg11_tiny", 2, 20241, "zhu2024", False,
         "CDRP, zhu2024 preset (soft target, sum L1, keep best), 10 steps",
         prune=("global", "values"), rates=RATES, iterations=10),
    case("score_alpha", "vgg11_tiny", 2, 20241, "zhu2024", True,
         "Score-CDRP, alpha weights (Eq. 4 literal); dead 2x2 channels score X*0", iterations=10),
    case("score_inverse", "vgg11_tiny", 2, 20241, "zhu2024", True,
         "Score-CDRP, --alpha-weight inverse (1 - alpha)", iterations=10, alpha_weight="inverse"),
    case("score_hard", "vgg11_tiny", 3, 7, "zhu2024", True,
         "Score-CDRP, --target hard, lr 0.05: the best step comes before T for two images",
         iterations=10, target="hard", lr=0.05),
    case("score_mean", "vgg11_tiny", 2, 20241, "zhu2024", True, "Score-CDRP, --l1 mean (gamma 5, lr 0.05)",
         iterations=10, l1="mean", gamma=5.0, lr=0.05),
    case("cdrp_wang", "vgg11_tiny", 2, 3, "wang2018", False,
         "CDRP, wang2018 preset in full (T 30, lr 0.1, gamma 0.05, clamp 5): a third of the gates clamp to 0",
         prune=("global",)),
    case("cdrp_class_flip", "vgg11_tiny", 3, 7, "wang2018", False,
         "CDRP, gamma 0.5: the class changes along the way and steps with j != c are never kept",
         iterations=10, gamma=0.5),
    case("cdrp_clamp", "vgg11_ten", 2, 11, "wang2018", False,
         "most gates clamped to exactly 0 (pruning ties by index); conv 0 has ten channels, so "
         "floor(rate*10) is an integer at rates 0.3/0.7/0.9",
         prune=("global", "values"), rates=RATES, iterations=10, gamma=0.3, target="hard"),
    case("keep_last", "vgg11_tiny", 2, 7, "zhu2024", False,
         "--keep last-below-initial (the seed's literal listing): keeps step 10",
         iterations=10, target="hard", lr=0.1, keep="last-below-initial"),
    case("keep_best_twin", "vgg11_tiny", 2, 7, "zhu2024", False,
         "keep best on the keep_last problem: keeps steps 5 and 3", iterations=10, target="hard", lr=0.1),
    case("cdrp_zhu_full", "vgg11_tiny", 1, 20241, "zhu2024", False, "CDRP, zhu2024 preset in full (T 100)"),
    case("score_hard_full", "vgg11_tiny", 1, 7, "zhu2024", True,
         "Score-CDRP, zhu2024 preset in full (T 100), hard target", target="hard"),
    case("resnet18_score", "resnet18_tiny", 2, 20241, "zhu2024", True,
         "Score-CDRP on a ResNet-18 layout: CIC masks from the gated tensors (after the ReLU, or the BN "
         "before the add), path maps at layer4", prune=("global",), rates=RATES, iterations=10, target="hard",
         lr=0.05),
    case("resnet50_cdrp", "resnet50_tiny", 2, 20241, "zhu2024", False,
         "CDRP on Bottlenecks (downsample gates in module order)", rates=RATES, iterations=10),
    case("vgg16_score", "vgg16_mini", 1, 20241, "zhu2024", True,
         "Score-CDRP on the VGG16 mini widths at 64x64 (avgpool 2, 4x4 last block)",
         prune=("global",), rates=RATES, iterations=10, target="hard", lr=0.05),
]


def build(net, seed):
    arch, widths, hidden, nc, h, w, avgpool, layer = NETS[net]
    if arch.startswith("resnet"):
        return resnet_torch.build_resnet(arch, prng.random_resnet_state(arch, widths, nc, seed))
    state = prng.random_vgg_state(arch, widths, hidden, nc, avgpool, seed)
    return vgg_torch.build_vgg(arch, state, avgpool)


def path_maps(model, x, gates, cls, layer, variants, rates, dtype):
    """Pathway gradients at every rate and variant, and the path Score-CAM,
    from the given gates (the float32 golden gates, as a C test would load)."""
    maps = {}
    for rate in rates:
        for kind in ("",) + tuple(variants):
            m, pruned, pcls = ref_cdrp.pathway_grad(model, x, gates, cls, rate, global_=kind == "global",
                                                    keep_values=kind == "values", dtype=dtype)
            maps[f"pathway{'_' + kind if kind else ''}_r{rate:.2f}"] = (m, pcls, pruned)
    return maps, ref_cdrp.path_scorecam(model, x, gates, cls, layer, dtype)


def check(name, b, layout, r64, r32, maps64, maps32, sc64, sc32):
    """float32 must tell the same story as float64 (else: ill-conditioned)."""
    problems = []
    if r64.kept_iteration != r32.kept_iteration:
        problems.append(f"kept_iteration {r64.kept_iteration} vs {r32.kept_iteration}")
    if r64.path_class != r32.path_class or r64.cls != r32.cls:
        problems.append("classes differ")
    if r64.step_classes != r32.step_classes:
        problems.append("per-step classes differ")
    gates_err = float((r64.gates - r32.gates.double()).abs().max())
    if gates_err > GATES_ATOL:
        problems.append(f"gates differ by {gates_err:.3g}")
    loss_err = max(abs(a - b_) / max(1.0, abs(a)) for a, b_ in zip(r64.losses, r32.losses))
    loss_abs_err = max(abs(a - b_) for a, b_ in zip(r64.losses, r32.losses))
    if loss_err > LOSS_RTOL:
        problems.append(f"losses differ by {loss_err:.3g}")
    alpha_err = 0.0
    if r64.alpha is not None:
        alpha_err = float((r64.alpha - r32.alpha.double()).abs().max())
        if alpha_err > ALPHA_ATOL or not torch.equal(r64.flat, r32.flat):
            problems.append(f"alpha differs by {alpha_err:.3g} or flat channels differ")
    map_err = 0.0
    for k in maps64:
        (m64, c64, p64), (m32, c32, p32) = maps64[k], maps32[k]
        map_err = max(map_err, float((m64 - m32.double()).abs().max()))
        if c64 != c32 or not torch.equal(p64.double(), p32.double()):
            problems.append(f"{k}: pruned class or pruned gates differ")
    map_err = max(map_err, float((sc64["map"] - sc32["map"].double()).abs().max()))
    if not torch.equal(sc64["flat"], sc32["flat"]) or sc64["path_class"] != sc32["path_class"]:
        problems.append("path Score-CAM flat channels or class differ")
    if map_err > MAP_ATOL:
        problems.append(f"maps differ by {map_err:.3g}")
    margins = decision_margins(r64, layout)
    if margins["class_gap"] < CLASS_GAP_MIN:
        problems.append(f"top-2 logits {margins['class_gap']:.3g} apart")
    if margins["keep_gap"] is not None and margins["keep_gap"] < KEEP_GAP_FACTOR * loss_abs_err:
        problems.append(f"a keep decision {margins['keep_gap']:.3g} from its threshold "
                        f"(float32 moves the losses by {loss_abs_err:.3g})")
    if problems:
        msg = f"{name} image {b}: ill-conditioned ({'; '.join(problems)}); choose another case"
        if not DRY_RUN:
            raise SystemExit(msg)
        print(msg)
    return dict(gates=gates_err, alpha=alpha_err, losses=loss_err, maps=map_err), margins


def decision_margins(r, layout):
    """Smallest non-zero distance of any decision from flipping (float64 run)."""
    nonzero = [abs(g) for g in r.keep_gaps if g is not None and g != 0]
    gates = r.gates.double()
    cut_gaps = []
    for rate in RATES:
        for lo, count in [(0, gates.numel())] + [(off, c) for _, off, c in layout]:
            cut = int(np.floor(rate * count + 1e-9))
            if 0 < cut < count:
                v = torch.sort(gates[lo:lo + count]).values
                gap = float(v[cut] - v[cut - 1])
                if gap != 0:
                    cut_gaps.append(gap)
    # None (JSON null) where there was no such decision
    return dict(class_gap=min(r.class_gaps), keep_gap=min(nonzero, default=None),
                cut_gap=min(cut_gaps, default=None))


def forward_count(r, o):
    """Forwards host/methods/cdrp.c spends (at_cdrp_result.forwards): the
    ungated prediction, for Score-CDRP one capturing forward plus one per
    non-flat channel plus one shared X o 0 forward when any channel is flat,
    then T + 1 gated forwards (docs/methods.md#cost-arithmetic: "masks that are all zero share
    one forward")."""
    cic = 0
    if r.alpha is not None:
        n_flat = int(r.flat.sum())
        cic = 1 + (r.flat.numel() - n_flat) + (1 if n_flat else 0)
    return 1 + cic + o.iterations + 1


DRY_RUN = False  # --dry-run: report ill-conditioned cases, write nothing


def run_case(out_dir, c):
    name, net, n, seed, preset_name, scored = c["name"], c["net"], c["batch"], c["seed"], c["preset"], c["score"]
    variants, rates, over, covers = c["prune"], c["rates"], c["over"], c["covers"]
    arch, widths, hidden, nc, h, w, avgpool, layer = NETS[net]
    o = ref_cdrp.preset(preset_name, scored, **over)
    model = build(net, seed)
    layout, n_gates = ref_cdrp.gate_nodes(model)
    xs = torch.from_numpy(prng.fill("input", seed, (n, 3, h, w), 2.0))
    per, arrays, errs = [], {}, []
    for b in range(n):
        x = xs[b:b + 1]
        r64 = ref_cdrp.cdrp(model, x, o, torch.float64)
        gates32 = r64.gates.float()  # what gates.npy holds: the maps start from it
        maps64, sc64 = path_maps(model, x, gates32, r64.cls, layer, variants, rates, torch.float64)
        r32 = ref_cdrp.cdrp(model, x, o, torch.float32)
        maps32, sc32 = path_maps(model, x, gates32, r64.cls, layer, variants, rates, torch.float32)
        err, margins = check(name, b, layout, r64, r32, maps64, maps32, sc64, sc32)
        errs.append(err)
        row = dict(cls=r64.cls, orig_prob=r64.orig_prob, kept_iteration=r64.kept_iteration,
                   path_class=r64.path_class, path_prob=r64.path_prob, initial_loss=r64.initial_loss,
                   final_loss=r64.final_loss, step_classes=r64.step_classes,
                   zeros=int((r64.gates == 0).sum()), path_scorecam_class=sc64["path_class"],
                   path_scorecam_flat=int(sc64["flat"].sum()), margins=margins,
                   forwards=forward_count(r64, o))
        if r64.alpha is not None:
            row.update(flat=int(r64.flat.sum()), zero_score=r64.zero_score)
        row["pathway_class"] = {k: v[1] for k, v in maps64.items()}
        per.append(row)
        put = arrays.setdefault
        put("gates", []).append(gates32.numpy())
        put("losses", []).append(np.array(r64.losses))
        if r64.alpha is not None:
            put("alpha", []).append(r64.alpha.numpy())
        for k, (m, _, _) in maps64.items():
            put(k, []).append(m.numpy())
        put("path_scorecam", []).append(sc64["map"].numpy())
        put("path_scorecam_weights", []).append(sc64["weights"].numpy())
    d = os.path.join(out_dir, name)
    if DRY_RUN:
        d = os.path.join(out_dir, ".dry-run")
    os.makedirs(d, exist_ok=True)
    for k, v in arrays.items():
        np.save(os.path.join(d, k + ".npy"), np.stack(v).astype(np.float32))
    meta = dict(arch=arch, widths=widths, hidden=hidden, classes=nc, h=h, w=w, avgpool=avgpool, seed=seed,
                batch=n, n_gates=n_gates, covers=covers, preset=preset_name,
                method="score-cdrp" if scored else "cdrp", options=dict(vars(o)), layer=layer,
                rates=list(rates), prune_variants=["layer"] + list(variants),
                tolerances_f32_vs_f64=dict(gates=GATES_ATOL, alpha=ALPHA_ATOL, losses=LOSS_RTOL, maps=MAP_ATOL),
                f32_vs_f64={k: max(e[k] for e in errs) for k in errs[0]}, torch=torch.__version__)
    for key in per[0]:
        meta[key] = [row[key] for row in per]
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/goldens/cdrp")
    ap.add_argument("--only", default=None, help="comma-separated case names")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dry-run", action="store_true", help="report ill-conditioned cases instead of stopping")
    args = ap.parse_args()
    global DRY_RUN
    DRY_RUN = args.dry_run
    if DRY_RUN:
        args.out = os.path.join("/tmp", "cdrp-goldens-dry-run")
    torch.set_num_threads(args.threads)
    only = set(args.only.split(",")) if args.only else None
    os.makedirs(args.out, exist_ok=True)
    for c in CASES:
        if only and c["name"] not in only:
            continue
        m = run_case(args.out, c)
        print(f"{c['name']}: cls {m['cls']} kept {m['kept_iteration']} path {m['path_class']} "
              f"loss {['%.5f' % v for v in m['initial_loss']]} -> {['%.5f' % v for v in m['final_loss']]} "
              f"zeros {m['zeros']} flat {m.get('flat')} | f32-f64 " +
              " ".join(f"{k} {v:.2g}" for k, v in m["f32_vs_f64"].items()) + " | margins " +
              " ".join(f"{k} {min((x[k] for x in m['margins'] if x[k] is not None), default=0):.2g}"
                       for k in m["margins"][0]))
    with open(os.path.join(args.out, "cases.txt"), "w") as f:
        for c in CASES:
            f.write(c["name"] + "\n")


if __name__ == "__main__":
    main()
