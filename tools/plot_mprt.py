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
import json
import sys

import numpy as np

REPS = 2000        # bootstrap resamples, as attrib eval / reproduce
SEED = 20240901    # fixed: the same inputs give the same bands
ORDERS = ("cascading", "independent")


def read_lines(path, key, images, methods):
    """{method: {image: line}} (the last line per key) and the layer names."""
    out, layers = {}, None
    with open(path) as f:
        for raw in f:
            raw = raw.strip()
            if not raw:
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                continue  # a torn last line
            m = line.get("method")
            if key and line.get("class_option") != key:
                continue
            if methods and m not in methods:
                continue
            if images is not None and line.get("image") not in images:
                continue
            if layers is None:
                layers = line.get("layers")
            elif line.get("layers") != layers:
                sys.exit("plot_mprt: %s: lines of different models (their layers differ)" % path)
            out.setdefault(m, {})[line["image"]] = line
    return out, layers or []


def mean_ci(values, rng):
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if v.size == 0:
        return np.nan, np.nan, np.nan
    idx = rng.integers(0, v.size, size=(REPS, v.size))
    means = v[idx].mean(axis=1)
    return v.mean(), np.quantile(means, 0.025), np.quantile(means, 0.975)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eval", required=True, help="eval.mprt.jsonl")
    ap.add_argument("--key", help="eval's class_option of the lines (mprt,seedN); default: any")
    ap.add_argument("--list", help="only these images (one path per line)")
    ap.add_argument("--methods", help="comma-separated method tags in legend order (default: all)")
    ap.add_argument("--out", required=True, help="PNG to write")
    a = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = None
    if a.list:
        with open(a.list) as f:
            images = {l.strip() for l in f if l.strip()}
    methods = a.methods.split(",") if a.methods else None
    lines, layers = read_lines(a.eval, a.key, images, methods)
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
    fig.savefig(a.out, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
