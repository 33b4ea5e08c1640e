#!/usr/bin/python3
"""The model-parameter-randomisation curves as Adebayo et al. 2018 draw them
(Fig. 2/4): Spearman rank correlation of each method's map with its original
map against the layers re-initialised, the original model at the left, one
line per method with a 95 % bootstrap CI band; cascading and independent
randomisation side by side.

Reads the per-image lines `attrib eval --metric mprt` wrote (eval.mprt.jsonl:
"layers", "cascading", "independent"; null = an all-zero map, excluded);
`attrib reproduce` calls it.

  /usr/bin/python3 tools/plot_mprt.py --eval out/maps/eval.mprt.jsonl --out mprt.png

Needs Debian's python3-numpy and python3-matplotlib (no other packages).
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval_plot import SEED, add_arguments, eval_lines, mean_ci, pyplot, save  # noqa: E402

ORDERS = ("cascading", "independent")


def read_lines(path, key, list_path, methods):
    """{method: {image: line}} (the last line per key) and the layer names."""
    out, layers = {}, None
    for line in eval_lines(path, key, list_path):
        m = line.get("method")
        if methods and m not in methods:
            continue
        if layers is None:
            layers = line.get("layers")
        elif line.get("layers") != layers:
            sys.exit("plot_mprt: %s: lines of different models (their layers differ)" % path)
        out.setdefault(m, {})[line["image"]] = line
    return out, layers or []


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(ap, "eval.mprt.jsonl", "eval's class_option of the lines (mprt,seedN); default: any",
                  extra=lambda ap: ap.add_argument(
                      "--methods", help="comma-separated method tags in legend order (default: all)"))
    a = ap.parse_args(argv)
    plt = pyplot()
    methods = a.methods.split(",") if a.methods else None
    lines, layers = read_lines(a.eval, a.key, a.list, methods)
    if not lines:
        sys.exit("plot_mprt: %s: no mprt lines%s" % (a.eval, " with key " + a.key if a.key else ""))
    order = methods or sorted(lines)
    orders = [o for o in ORDERS if any(o in l for per in lines.values() for l in per.values())]
    fig, axes = plt.subplots(1, len(orders), figsize=(6.5 * len(orders), 4.6), squeeze=False)
    x = np.arange(len(layers) + 1)
    for ax, o in zip(axes[0], orders):
        for k, m in enumerate(order):
            if m not in lines:
                continue
            rng = np.random.default_rng(SEED)
            stats = [(1.0, 1.0, 1.0)]  # the original model: each map with itself
            for li in range(len(layers)):
                stats.append(mean_ci([l[o][li] if l.get(o) else None for l in lines[m].values()], rng))
            mean, lo, hi = (np.array(v) for v in zip(*stats))
            style = "--" if m.endswith("control") else "-"
            ax.plot(x, mean, style, marker="o", ms=3, label="%s (%d images)" % (m, len(lines[m])))
            ax.fill_between(x, lo, hi, alpha=0.15)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xticks(x)
        ax.set_xticklabels(["original"] + list(layers), rotation=90, fontsize=7)
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel("Spearman rank correlation with the original map")
        ax.set_title("%s randomisation%s" % (o, " (from the top)" if o == "cascading" else " (one layer)"))
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    save(fig, a.out, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
