#!/usr/bin/python3
"""Goldens for CDRP / Score-CDRP, path Score-CAM and the pathway gradient
(SPEC §3.3-3.6) on small random VGGs (tools/prng.py = host/random_model.c),
computed by tools/ref_cdrp.py. One folder per case under tests/goldens/cdrp:

  meta.json                net (arch widths hidden classes h w avgpool seed),
                           batch, n_gates, every CDRP option, and per image
                           (lists of length batch): cls, orig_prob,
                           kept_iteration, path_class, path_prob,
                           initial_loss, final_loss, flat / zero_score of the
                           CIC pass, the pruned networks' classes; the
                           float32-vs-float64 check results
  gates.npy     [n,G]      the path v after `iterations` steps
  alpha.npy     [n,G]      CIC scores (Score-CDRP cases with alpha weights)
  losses.npy    [n,T+1]    objective at Λ_t, t = 0..T
  pathway_r0.50.npy [n,H,W]         pathway gradient, per-layer pruning
  pathway_global_r0.50.npy, pathway_values_r0.50.npy   --prune global,
                           --keep-gate-values (where the case lists them)
  path_scorecam.npy [n,H,W], path_scorecam_weights.npy [n,C]

The pathway and path Score-CAM goldens start from gates.npy as stored
(float32), so a C test can feed that file to its own pruning / Score-CAM and
compare without running the optimisation.

Each case runs in float64 (the golden) and in float32; the float32 run must
keep the same kept_iteration, classes and flat channels, gates within
GATES_ATOL, maps within MAP_ATOL, else the case is ill-conditioned and the
script stops (choose another case). Short T: the optimisation amplifies
rounding differences, so the goldens take 10 steps.
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
import vgg_torch  # noqa: E402

GATES_ATOL = 1e-4   # float32 vs float64 gates after T steps (the brief's bar for a well-conditioned case)
ALPHA_ATOL = 1e-5   # CIC probabilities: one forward each, no amplification
LOSS_RTOL = 1e-5    # objective values
MAP_ATOL = 1e-4     # [0,1] maps (pathway gradient, path Score-CAM)
# Decision margins in the float64 run: a float32 engine must take the same
# decisions, so a case whose top-2 logits, keep comparison (loss <= minimum) or
# pruning cut (the gates either side of floor(rate*C)) come closer than these is
# rejected. Exact ties are fine: they come from gates clamped to exactly 0,
# which every implementation reproduces exactly.
CLASS_GAP_MIN = 1e-3
KEEP_GAP_MIN = 1e-5
CUT_GAP_MIN = 1e-5

NETS = {
    # name: arch, widths, hidden, classes, h, w, avgpool, Score-CAM layer (last conv's ReLU)
    "vgg11_tiny": ("vgg11", [4, 6, 8, 8, 8, 8, 8, 8], [16, 12], 8, 32, 32, 1, "features.19"),
    "vgg16_mini": ("vgg16", [8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 64], [32, 32], 10, 64, 64, 2,
                   "features.29"),
    # ten channels in conv 0: floor(rate * 10) is an integer for rates 0.3/0.7/0.9, where the
    # rounding of a float32 rate matters (floor(0.7f * 10) = 6 but floor(0.7 * 10) = 7)
    "vgg11_ten": ("vgg11", [10, 6, 8, 8, 8, 8, 8, 8], [16, 12], 8, 32, 32, 1, "features.19"),
}
RATES = (0.3, 0.5, 0.7, 0.9)  # SPEC §3.6 defaults

# name, net, batch, seed, preset, score_weighted, option overrides, prune variants, what it covers
CASES = [
    ("cdrp_zhu", "vgg11_tiny", 2, 20241, "zhu2024", False, dict(iterations=10), ("global", "values"),
     "CDRP, zhu2024 preset (soft target, sum L1, keep best), 10 steps"),
    ("score_alpha", "vgg11_tiny", 2, 20241, "zhu2024", True, dict(iterations=10), (),
     "Score-CDRP, alpha weights (Eq. 4 literal); dead 2x2 channels score X*0"),
    ("score_inverse", "vgg11_tiny", 2, 20241, "zhu2024", True, dict(iterations=10, alpha_weight="inverse"), (),
     "Score-CDRP, --alpha-weight inverse (1 - alpha)"),
    ("score_hard", "vgg11_tiny", 3, 7, "zhu2024", True, dict(iterations=10, target="hard", lr=0.05), (),
     "Score-CDRP, --target hard, lr 0.05: the best step is before T for two images"),
    ("score_mean", "vgg11_tiny", 2, 20241, "zhu2024", True, dict(iterations=10, l1="mean", gamma=5.0, lr=0.05),
     (), "Score-CDRP, --l1 mean"),
    ("cdrp_wang", "vgg11_tiny", 2, 3, "wang2018", False, dict(), ("global",),
     "CDRP, wang2018 preset in full (T 30, lr 0.1, gamma 0.05, clamp 5): a third of the gates clamp to 0"),
    ("cdrp_class_flip", "vgg11_tiny", 3, 7, "wang2018", False, dict(iterations=10, gamma=0.5), (),
     "CDRP, the class changes along the way: steps with j != c are never kept"),
    ("cdrp_clamp", "vgg11_ten", 2, 11, "wang2018", False, dict(iterations=10, gamma=0.3, target="hard"),
     ("global", "values"),
     "most gates clamped to exactly 0 (pruning ties by index); conv 0 has ten channels, so "
     "floor(rate*10) is an integer at rates 0.3/0.7/0.9"),
    ("keep_last", "vgg11_tiny", 2, 7, "zhu2024", False,
     dict(iterations=10, target="hard", lr=0.1, keep="last-below-initial"), (),
     "--keep last-below-initial (the seed's literal listing): keeps step 10"),
    ("keep_best_twin", "vgg11_tiny", 2, 7, "zhu2024", False, dict(iterations=10, target="hard", lr=0.1), (),
     "keep best on the keep_last problem: keeps steps 5 and 3"),
    ("score_zhu_full", "vgg11_tiny", 1, 20241, "zhu2024", True, dict(), (),
     "Score-CDRP, zhu2024 preset in full (T 100)"),
    ("vgg16_score", "vgg16_mini", 1, 20241, "zhu2024", True, dict(iterations=10, target="hard", lr=0.05),
     ("global",), "Score-CDRP on the VGG16 mini widths at 64x64 (avgpool 2), 4x4 last block"),
]


def build(net, seed):
    arch, widths, hidden, nc, h, w, avgpool, layer = NETS[net]
    state = prng.random_vgg_state(arch, widths, hidden, nc, avgpool, seed)
    return vgg_torch.build_vgg(arch, state, avgpool)


def path_maps(model, x, gates, cls, layer, variants, dtype):
    """Pathway gradients at every rate and variant, and the path Score-CAM,
    from the given gates (the float32 golden gates, as a C test would load)."""
    maps = {}
    for rate in RATES:
        for kind in ("",) + tuple(variants):
            m, pruned, pcls = ref_cdrp.pathway_grad(model, x, gates, cls, rate, global_=kind == "global",
                                                    keep_values=kind == "values", dtype=dtype)
            maps[f"pathway{'_' + kind if kind else ''}_r{rate:.2f}"] = (m, pcls, pruned)
    return maps, ref_cdrp.path_scorecam(model, x, gates, cls, layer, dtype)


def check(name, b, r64, r32, maps64, maps32, sc64, sc32):
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
    margins = decision_margins(r64)
    if margins["class_gap"] < CLASS_GAP_MIN:
        problems.append(f"top-2 logits {margins['class_gap']:.3g} apart")
    if margins["keep_gap"] < KEEP_GAP_MIN:
        problems.append(f"a keep decision {margins['keep_gap']:.3g} from its threshold")
    if margins["cut_gap"] < CUT_GAP_MIN:
        problems.append(f"a pruning cut between gates {margins['cut_gap']:.3g} apart")
    if problems:
        raise SystemExit(f"{name} image {b}: ill-conditioned ({'; '.join(problems)}); choose another case")
    return dict(gates=gates_err, alpha=alpha_err, losses=loss_err, maps=map_err), margins


def decision_margins(r):
    """Smallest non-zero distance of any decision from flipping (float64 run)."""
    nonzero = [abs(g) for g in r.keep_gaps if g is not None and g != 0]
    gates = r.gates.double()
    cut_gaps = []
    for rate in RATES:
        for lo, count in [(0, gates.numel())] + [(off, c) for _, off, c in LAYOUT]:
            cut = int(np.floor(rate * count + 1e-9))
            if 0 < cut < count:
                v = torch.sort(gates[lo:lo + count]).values
                gap = float(v[cut] - v[cut - 1])
                if gap != 0:
                    cut_gaps.append(gap)
    return dict(class_gap=min(r.class_gaps), keep_gap=min(nonzero, default=float("inf")),
                cut_gap=min(cut_gaps, default=float("inf")))


def run_case(out_dir, case):
    name, net, n, seed, preset_name, scored, over, variants, covers = case
    arch, widths, hidden, nc, h, w, avgpool, layer = NETS[net]
    o = ref_cdrp.preset(preset_name, scored, **over)
    model = build(net, seed)
    global LAYOUT
    LAYOUT, n_gates = vgg_torch.gate_layout(model)
    xs = torch.from_numpy(prng.fill("input", seed, (n, 3, h, w), 2.0))
    per, arrays, errs = [], {}, []
    for b in range(n):
        x = xs[b:b + 1]
        r64 = ref_cdrp.cdrp(model, x, o, torch.float64)
        gates32 = r64.gates.float()  # what gates.npy holds: the maps start from it
        maps64, sc64 = path_maps(model, x, gates32, r64.cls, layer, variants, torch.float64)
        r32 = ref_cdrp.cdrp(model, x, o, torch.float32)
        maps32, sc32 = path_maps(model, x, gates32, r64.cls, layer, variants, torch.float32)
        err, margins = check(name, b, r64, r32, maps64, maps32, sc64, sc32)
        errs.append(err)
        row = dict(cls=r64.cls, orig_prob=r64.orig_prob, kept_iteration=r64.kept_iteration,
                   path_class=r64.path_class, path_prob=r64.path_prob, initial_loss=r64.initial_loss,
                   final_loss=r64.final_loss, step_classes=r64.step_classes,
                   zeros=int((r64.gates == 0).sum()), path_scorecam_class=sc64["path_class"],
                   path_scorecam_flat=int(sc64["flat"].sum()), margins=margins)
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
    os.makedirs(d, exist_ok=True)
    for k, v in arrays.items():
        np.save(os.path.join(d, k + ".npy"), np.stack(v).astype(np.float32))
    meta = dict(arch=arch, widths=widths, hidden=hidden, classes=nc, h=h, w=w, avgpool=avgpool, seed=seed,
                batch=n, n_gates=n_gates, covers=covers, preset=preset_name,
                method="score-cdrp" if scored else "cdrp", options=dict(vars(o)), layer=layer,
                rates=list(RATES), prune_variants=["layer"] + list(variants),
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
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    only = set(args.only.split(",")) if args.only else None
    os.makedirs(args.out, exist_ok=True)
    for case in CASES:
        if only and case[0] not in only:
            continue
        m = run_case(args.out, case)
        print(f"{case[0]}: cls {m['cls']} kept {m['kept_iteration']} path {m['path_class']} "
              f"loss {['%.5f' % v for v in m['initial_loss']]} -> {['%.5f' % v for v in m['final_loss']]} "
              f"zeros {m['zeros']} flat {m.get('flat')} | f32-f64 " +
              " ".join(f"{k} {v:.2g}" for k, v in m["f32_vs_f64"].items()))
    with open(os.path.join(args.out, "cases.txt"), "w") as f:
        for case in CASES:
            f.write(case[0] + "\n")


if __name__ == "__main__":
    main()
