#!/usr/bin/python3
"""Side-by-side CPU forward timing: attrib vs onnxruntime on the same machine
in one run, interleaved (attrib, onnxruntime, attrib, ...), medians of the
repeats. VGG16 at 224 with random weights (the same shapes and generator as
`attrib bench --nets vgg16`), exported from PyTorch to ONNX once.

  /usr/bin/python3 -m pip install --no-deps --target .peers onnxruntime
  /usr/bin/python3 tools/bench_ort_peer.py [--threads N] [--batch 1,8] [--repeats 3] [--min-time S]
      [--attrib ./attrib] [--attrib-args "--conv direct"]

Prints a markdown table of ms/image (onnxruntime / attrib > 1: attrib is
faster). onnxruntime runs with intra-op threads = --threads, one inter-op
thread, all graph optimisations, sequential execution.
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".peers"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

import prng  # noqa: E402
import vgg_torch  # noqa: E402


def export_vgg16(path):
    state = prng.random_vgg_state("vgg16", prng.standard_widths("vgg16"), [4096, 4096], 1000, 7, 1)
    vgg = vgg_torch.build_vgg("vgg16", state, 7).eval()

    class Logits(torch.nn.Module):  # build_vgg's module has no forward(); vgg_torch.forward runs it
        def __init__(self):
            super().__init__()
            self.vgg = vgg

        def forward(self, x):
            return vgg_torch.forward(self.vgg, x)[0]

    x = torch.zeros(1, 3, 224, 224)
    torch.onnx.export(Logits().eval(), x, path, input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, opset_version=13)


def ort_session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def time_ort(sess, batch, min_time):
    x = prng.fill("input", 1, (batch, 3, 224, 224), 2.0).astype(np.float32)
    sess.run(None, {"x": x})  # warm-up
    iters, t0 = 0, time.perf_counter()
    while True:
        sess.run(None, {"x": x})
        iters += 1
        t = time.perf_counter() - t0
        if t >= min_time:
            return 1e3 * t / iters / batch


def time_attrib(binary, extra, batch, threads, min_time):
    cmd = [binary, "bench", "--backend", "cpu", "--json", "--passes", "forward", "--nets", "vgg16",
           "--batch", str(batch), "--min-time", str(min_time), "--threads", str(threads)] + extra
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return rows[0]["ms_per_image"], rows[0].get("peak_gflops", 0), rows[0]["gmac_per_image"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--attrib", default=os.path.join(ROOT, "attrib"))
    ap.add_argument("--attrib-args", default="", help="extra bench options, e.g. '--conv direct'")
    args = ap.parse_args()
    extra = shlex.split(args.attrib_args)
    batches = [int(b) for b in args.batch.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "vgg16.onnx")
        export_vgg16(path)
        sess = ort_session(path, args.threads)
        ours = {b: [] for b in batches}
        theirs = {b: [] for b in batches}
        peak = gmac = 0
        for _ in range(args.repeats):
            for b in batches:
                ms, peak, gmac = time_attrib(args.attrib, extra, b, args.threads, args.min_time)
                ours[b].append(ms)
                theirs[b].append(time_ort(sess, b, args.min_time))
    print(f"onnxruntime {ort.__version__}, {args.threads} threads; attrib {' '.join(extra) or '(defaults)'}; "
          f"medians of {args.repeats} interleaved repeats; measured CPU peak {peak:.1f} GFLOP/s")
    print("| net | batch | attrib ms/image | attrib GFLOP/s (% of peak) | onnxruntime ms/image "
          "| onnxruntime GFLOP/s (% of peak) | onnxruntime / attrib |")
    print("|---|---|---|---|---|---|---|")
    for b in batches:
        a, o = statistics.median(ours[b]), statistics.median(theirs[b])
        ga, go = 2 * gmac / a * 1e3, 2 * gmac / o * 1e3
        print(f"| VGG16 | {b} | {a:.1f} | {ga:.1f} ({100 * ga / peak if peak else 0:.0f} %) | {o:.1f} | {go:.1f} "
              f"({100 * go / peak if peak else 0:.0f} %) | {o / a:.2f} |")


if __name__ == "__main__":
    main()
