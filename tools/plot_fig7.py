#!/usr/bin/python3
"""Fig. 7 of Zhu et al. 2024: AD and IC of the CDRP and Score-CDRP path
heatmaps against the top-pixel proportion, with 95 % bootstrap CI bands.

Reads the per-image lines `attrib eval --metric ad-ic --mask-mode top-p`
wrote (eval.ad-ic.jsonl, terms "AD@p" and "IC@p") for the methods
path-scorecam.cdrp and path-scorecam.score-cdrp; `attrib reproduce` calls it.

  /usr/bin/python3 tools/plot_fig7.py --eval out/reproduce/maps/eval.ad-ic.jsonl \
      --key prob,original,top-p --out results/REPORT.fig7.png

Needs Debian's python3-numpy and python3-matplotlib (no other packages).
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval_plot import SEED, add_arguments, eval_lines, mean_ci, pyplot, save  # noqa: E402

METHODS = [("path-scorecam.cdrp", "CDRP", "tab:blue"),
           ("path-scorecam.score-cdrp", "Score-CDRP", "tab:red")]


def read_lines(path, key, list_path):
    """{method: {image: line}}: the last line per (method, image)."""
    out = {m: {} for m, _, _ in METHODS}
    for line in eval_lines(path, key, list_path):
        if line.get("method") in out:
            out[line["method"]][line["image"]] = line
    return out


def proportions_of(lines):
    props = set()
    for per_image in lines.values():
        for line in per_image.values():
            for k in line:
                if k.startswith("AD@"):
                    props.add(float(k[3:]))
    return sorted(props)


def term_key(p):
    return "%g" % p


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(ap, "eval.ad-ic.jsonl", "eval's class_option of the top-p lines (score,scorer,mode)",
                  "prob,original,top-p",
                  lambda ap: ap.add_argument("--proportions",
                                             help="comma-separated p %% (default: all in the file)"))
    a = ap.parse_args(argv)
    plt = pyplot()
    lines = read_lines(a.eval, a.key, a.list)
    props = ([float(p) for p in a.proportions.split(",")] if a.proportions
             else proportions_of(lines))
    if not props or not any(lines.values()):
        print("plot_fig7: no top-p AD/IC lines for the path heatmaps in %s" % a.eval, file=sys.stderr)
        return 1

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    counts = []
    for method, label, colour in METHODS:
        per_image = list(lines[method].values())
        counts.append("%s %d" % (label, len(per_image)))
        for ax, term in zip(axes, ("AD", "IC")):
            stats = np.array([mean_ci([l.get("%s@%s" % (term, term_key(p))) for l in per_image],
                                      np.random.default_rng(SEED)) for p in props])
            ax.plot(props, stats[:, 0], "o-", color=colour, label=label, ms=4)
            ax.fill_between(props, stats[:, 1], stats[:, 2], color=colour, alpha=0.2, lw=0)
    for ax, term, better in zip(axes, ("AD", "IC"), ("lower", "higher")):
        ax.set_xlabel("top-pixel proportion p (%)")
        ax.set_ylabel("%s (%%), %s is better" % (term, better))
        ax.set_title("%s of the path heatmaps" % ("Average Drop" if term == "AD" else
                                                   "Increase in Confidence"))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Fig. 7 (Zhu et al. 2024) on our data: mean and 95 %% bootstrap CI; images: %s"
                 % ", ".join(counts), fontsize=9)
    fig.tight_layout()
    save(fig, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
