#!/usr/bin/python3
"""Compare two runs of `attrib explain --method cdrp|score-cdrp` image by image:
the same kept class? how far apart are the gates and the CIC scores?

  tools/compare_paths.py OUT_A OUT_B [--method score-cdrp] [--json]

Used to measure what a lower precision (--precision, --cic-precision) or
another backend (cpu vs cuda) changes in the paths. Reads each folder's
results.jsonl and the .gates.npy / .alpha.npy files it names. Prints one
line per image and a summary: share of images with the same path class,
gates Pearson correlation (min, median), max |gate difference|, max
|alpha difference|, mean |path probability difference|. Exit 1 when the
folders share no image.
"""
import argparse
import json
import os
import sys

import numpy as np


def load(folder, method):
    rows = {}
    with open(os.path.join(folder, "results.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r.get("method") == method:
                rows[r["image"]] = r
    return rows


def npy(folder, path):
    return np.load(path if os.path.isabs(path) or os.path.exists(path) else os.path.join(folder, path))


def pearson(a, b):
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else (1.0 if np.array_equal(a, b) else 0.0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--method", default="score-cdrp")
    p.add_argument("--json", action="store_true", help="the summary as one JSON object")
    args = p.parse_args(argv)
    ra, rb = load(args.a, args.method), load(args.b, args.method)
    common = sorted(set(ra) & set(rb))
    if not common:
        print("compare_paths: no image with method %s in both folders" % args.method, file=sys.stderr)
        return 1
    same, corr, gmax, amax, pdiff = 0, [], 0.0, 0.0, []
    for img in common:
        x, y = ra[img], rb[img]
        ga, gb = npy(args.a, x["gates"]).astype(np.float64), npy(args.b, y["gates"]).astype(np.float64)
        c = pearson(ga, gb)
        d = float(np.abs(ga - gb).max())
        ad = float("nan")
        if "alpha" in x and "alpha" in y:
            ad = float(np.abs(npy(args.a, x["alpha"]).astype(np.float64) - npy(args.b, y["alpha"])).max())
            amax = max(amax, ad)
        same += x["path_class"] == y["path_class"]
        corr.append(c)
        gmax = max(gmax, d)
        pdiff.append(abs(x["path_prob"] - y["path_prob"]))
        if not args.json:
            print("%-48s class %d/%d kept %3d/%3d  gates r %.6f max|d| %.2e  alpha max|d| %.2e" % (
                os.path.basename(img), x["path_class"], y["path_class"], x["kept_iteration"],
                y["kept_iteration"], c, d, ad))
    summary = {"images": len(common), "same_path_class": same, "gates_r_min": min(corr),
               "gates_r_median": float(np.median(corr)), "gates_max_abs_diff": gmax,
               "alpha_max_abs_diff": amax, "path_prob_mean_abs_diff": float(np.mean(pdiff))}
    if args.json:
        print(json.dumps(summary))
    else:
        print("%d images: same path class %d/%d, gates r min %.6f median %.6f, max|gate diff| %.2e, "
              "max|alpha diff| %.2e, mean|path prob diff| %.2e" % (
                  len(common), same, len(common), summary["gates_r_min"], summary["gates_r_median"], gmax,
                  amax, summary["path_prob_mean_abs_diff"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
