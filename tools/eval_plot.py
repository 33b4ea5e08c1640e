"""What the plots of `attrib eval` lines share (tools/plot_fig7.py,
tools/plot_mprt.py): their options, reading the per-image lines, the mean
with a 95 % bootstrap CI, and writing the PNG.

Needs Debian's python3-numpy and python3-matplotlib (no other packages).
"""

import json
import os

import numpy as np

REPS = 2000        # bootstrap resamples, as attrib eval / reproduce
SEED = 20240901    # fixed: the same inputs give the same bands


def add_arguments(ap, eval_help, key_help, key_default=None, extra=None):
    """--eval, --key, --list, a plot's own (extra(ap)), --out."""
    ap.add_argument("--eval", required=True, help=eval_help)
    ap.add_argument("--key", default=key_default, help=key_help)
    ap.add_argument("--list", help="only these images (one path per line)")
    if extra:
        extra(ap)
    ap.add_argument("--out", required=True, help="PNG to write")


def eval_lines(path, key, list_path):
    """The lines of an eval .jsonl with class_option key (any when None), of
    the images listed in list_path (all when None); a torn line is skipped."""
    images = None
    if list_path:
        with open(list_path) as f:
            images = {s.strip() for s in f if s.strip()}
    with open(path) as f:
        for raw in f:
            raw = raw.strip()
            if not raw:
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                continue  # a torn last line
            if key and line.get("class_option") != key:
                continue
            if images is not None and line.get("image") not in images:
                continue
            yield line


def mean_ci(values, rng):
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if v.size == 0:
        return np.nan, np.nan, np.nan
    idx = rng.integers(0, v.size, size=(REPS, v.size))
    means = v[idx].mean(axis=1)
    return v.mean(), np.quantile(means, 0.025), np.quantile(means, 0.975)


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, out, **kw):
    """Written whole or not at all (a temporary file renamed)."""
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    tmp = out + ".tmp.png"
    fig.savefig(tmp, **kw)
    os.replace(tmp, out)
