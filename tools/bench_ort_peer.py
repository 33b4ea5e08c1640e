#!/usr/bin/python3
"""Side-by-side CPU forward timing: attrib vs onnxruntime (and, with --torch,
PyTorch) on the same machine in one run, interleaved (attrib, onnxruntime,
PyTorch, attrib, ...), medians of the repeats. VGG16 or ResNet-50 at 224 with
random weights (the same shapes and generator as `attrib bench --nets
vgg16|resnet50`), exported from PyTorch to ONNX once.

  /usr/bin/python3 -m pip install --no-deps --target .peers onnxruntime
  /usr/bin/python3 tools/bench_ort_peer.py [--net vgg16|resnet50] [--torch] [--threads N] [--batch 1,8]
      [--repeats 3] [--min-time S] [--attrib ./attrib] [--attrib-args "--conv direct"]
      [--waiting defaults|passive|active] [--scorecam [--images 1] [--scorecam-batch 32]]

Prints a markdown table of ms/image (peer / attrib > 1: attrib is faster),
after the load average (os.getloadavg) before and after the run.

--scorecam (VGG16) times Score-CAM per image instead: attrib's `bench --method
scorecam` (the last conv's 512 channels: one forward, then one masked forward
per channel that is not constant) against an onnxruntime loop doing the same
work: one forward that also returns the last conv's activations, each
channel's map bilinearly upsampled to 224 x 224 and min-max normalised, the
512 masked inputs run in batches of --scorecam-batch, softmax scores, the
weighted sum.
onnxruntime runs with intra-op threads = --threads, one inter-op thread, all
graph optimisations, sequential execution; PyTorch with
torch.set_num_threads(--threads), no_grad, eval mode.

--waiting says how idle threads wait between parallel steps:
  defaults  each engine's own default: attrib's OpenMP threads sleep
            (passive), onnxruntime's spin;
  passive   both sleep (onnxruntime's session.intra_op.allow_spinning = 0);
  active    both spin (attrib under OMP_WAIT_POLICY=active).
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
import resnet_torch  # noqa: E402
import vgg_torch  # noqa: E402


def build_net(net):
    """The random network as a torch module whose forward gives the logits."""
    if net == "resnet50":
        import torchvision
        model = torchvision.models.resnet50(weights=None)  # torchvision's own module graph
        state = prng.random_resnet_state("resnet50", prng.RESNET_WIDTHS, 1000, 1)
        model.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()}, strict=False)
        return model.eval()
    state = prng.random_vgg_state("vgg16", prng.standard_widths("vgg16"), [4096, 4096], 1000, 7, 1)
    vgg = vgg_torch.build_vgg("vgg16", state, 7).eval()

    class Logits(torch.nn.Module):  # build_vgg's module has no forward(); vgg_torch.forward runs it
        def __init__(self):
            super().__init__()
            self.vgg = vgg

        def forward(self, x):
            return vgg_torch.forward(self.vgg, x)[0]

    return Logits().eval()


def export_onnx(model, path):
    x = torch.zeros(1, 3, 224, 224)
    torch.onnx.export(model, x, path, input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, opset_version=13)


def time_torch(model, batch, min_time):
    x = torch.from_numpy(prng.fill("input", 1, (batch, 3, 224, 224), 2.0))
    with torch.no_grad():
        model(x)  # warm-up
        iters, t0 = 0, time.perf_counter()
        while True:
            model(x)
            iters += 1
            t = time.perf_counter() - t0
            if t >= min_time:
                return 1e3 * t / iters / batch


WAITING = "defaults"


def attrib_env():
    env = dict(os.environ)
    if WAITING == "active":
        env["OMP_WAIT_POLICY"] = "active"
    elif WAITING == "passive":
        env["OMP_WAIT_POLICY"] = "passive"
    return env


def ort_session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    if WAITING == "passive":
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
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


def export_scorecam_onnx(model, path):
    """VGG16 with two outputs: the logits and the last conv's (ReLU'd) map."""
    class Both(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vgg = model.vgg

        def forward(self, x):
            logits, caps = vgg_torch.forward(self.vgg, x, capture=("features.29",))
            return logits, caps["features.29"]

    x = torch.zeros(1, 3, 224, 224)
    torch.onnx.export(Both().eval(), x, path, input_names=["x"], output_names=["logits", "acts"],
                      dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}, "acts": {0: "n"}}, opset_version=13)


def scorecam_ort(sess, x1, batch):
    """One image's Score-CAM through onnxruntime; returns (map, forwards)."""
    logits, acts = sess.run(None, {"x": x1})
    cls = int(np.argmax(logits[0]))
    a = torch.from_numpy(acts[0])
    up = torch.nn.functional.interpolate(a[None], size=x1.shape[2:], mode="bilinear", align_corners=False)[0]
    lo, hi = up.amin((1, 2), keepdim=True), up.amax((1, 2), keepdim=True)
    masks = torch.where(hi > lo, (up - lo) / (hi - lo).clamp_min(1e-30), torch.zeros_like(up))
    xt = torch.from_numpy(x1)
    scores, forwards = [], 1
    for i in range(0, masks.shape[0], batch):
        xb = (xt * masks[i:i + batch, None]).numpy()
        lg = torch.from_numpy(sess.run(["logits"], {"x": xb})[0])
        scores.append(torch.softmax(lg, 1)[:, cls])
        forwards += xb.shape[0]
    w = torch.cat(scores)
    cam = torch.relu((w[:, None, None] * a).sum(0))
    return cam, forwards


def time_scorecam_ort(sess, images, batch):
    x = prng.fill("input", 7, (images, 3, 224, 224), 2.0).astype(np.float32)
    t0, forwards = time.perf_counter(), 0
    for i in range(images):
        forwards += scorecam_ort(sess, x[i:i + 1], batch)[1]
    return (time.perf_counter() - t0) / images, forwards / images


def time_scorecam_attrib(binary, extra, images, threads):
    cmd = [binary, "bench", "--backend", "cpu", "--json", "--method", "scorecam", "--nets", "vgg16",
           "--images", str(images), "--threads", str(threads)] + extra
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=attrib_env()).stdout
    row = [json.loads(line) for line in out.splitlines() if line.startswith("{")][0]
    return row["s_per_image"], row["forwards_per_image"]


def scorecam_main(args, extra):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "vgg16_scorecam.onnx")
        export_scorecam_onnx(build_net("vgg16"), path)
        sess = ort_session(path, args.threads)
        ours, theirs, fa, fo = [], [], 0, 0
        load0 = os.getloadavg()
        for _ in range(args.repeats):
            s, fa = time_scorecam_attrib(args.attrib, extra, args.images, args.threads)
            ours.append(s)
            s, fo = time_scorecam_ort(sess, args.images, args.scorecam_batch)
            theirs.append(s)
        load1 = os.getloadavg()
    a, o = statistics.median(ours), statistics.median(theirs)
    print(f"onnxruntime {ort.__version__}, {args.threads} threads; attrib {' '.join(extra) or '(defaults)'}; "
          f"waiting {args.waiting}; Score-CAM on VGG16 at 224, {args.images} image(s) per run, onnxruntime batches of {args.scorecam_batch}; "
          f"medians of {args.repeats} interleaved repeats; load average {load0[0]:.2f} before, {load1[0]:.2f} after")
    print("| method | attrib s/image | attrib forwards/image | onnxruntime loop s/image | onnxruntime forwards/image "
          "| onnxruntime / attrib |")
    print("|---|---|---|---|---|---|")
    print(f"| Score-CAM | {a:.2f} | {fa:.0f} | {o:.2f} | {fo:.0f} | {o / a:.2f} |")


def time_attrib(binary, extra, net, batch, threads, min_time):
    cmd = [binary, "bench", "--backend", "cpu", "--json", "--passes", "forward", "--nets", net,
           "--batch", str(batch), "--min-time", str(min_time), "--threads", str(threads)] + extra
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=attrib_env()).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return rows[0]["ms_per_image"], rows[0].get("peak_gflops", 0), rows[0]["gmac_per_image"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", choices=["vgg16", "resnet50"], default="vgg16")
    ap.add_argument("--torch", action="store_true", help="also time PyTorch, interleaved")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--attrib", default=os.path.join(ROOT, "attrib"))
    ap.add_argument("--attrib-args", default="", help="extra bench options, e.g. '--conv direct'")
    ap.add_argument("--scorecam", action="store_true", help="time Score-CAM per image (VGG16) instead")
    ap.add_argument("--images", type=int, default=1, help="--scorecam: images per run")
    ap.add_argument("--scorecam-batch", type=int, default=32, help="--scorecam: onnxruntime's masked batch")
    ap.add_argument("--waiting", choices=["defaults", "passive", "active"], default="defaults",
                    help="how idle threads wait: each engine's default, both sleep, or both spin")
    args = ap.parse_args()
    global WAITING
    WAITING = args.waiting
    extra = shlex.split(args.attrib_args)
    torch.set_num_threads(args.threads)
    if args.scorecam:
        return scorecam_main(args, extra)
    batches = [int(b) for b in args.batch.split(",")]
    label = {"vgg16": "VGG16", "resnet50": "ResNet-50"}[args.net]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, args.net + ".onnx")
        model = build_net(args.net)
        export_onnx(model, path)
        sess = ort_session(path, args.threads)
        ours = {b: [] for b in batches}
        theirs = {b: [] for b in batches}
        pt = {b: [] for b in batches}
        peak = gmac = 0
        load0 = os.getloadavg()
        for _ in range(args.repeats):
            for b in batches:
                ms, peak, gmac = time_attrib(args.attrib, extra, args.net, b, args.threads, args.min_time)
                ours[b].append(ms)
                theirs[b].append(time_ort(sess, b, args.min_time))
                if args.torch:
                    pt[b].append(time_torch(model, b, args.min_time))
        load1 = os.getloadavg()
    print(f"onnxruntime {ort.__version__}{', torch ' + torch.__version__ if args.torch else ''}, {args.threads} "
          f"threads; attrib {' '.join(extra) or '(defaults)'}; waiting {args.waiting}; "
          f"medians of {args.repeats} interleaved repeats; "
          f"measured CPU peak {peak:.1f} GFLOP/s; load average {load0[0]:.2f} before, {load1[0]:.2f} after")
    head = ("| net | batch | attrib ms/image | attrib GFLOP/s (% of peak) | onnxruntime ms/image "
            "| onnxruntime GFLOP/s (% of peak) | onnxruntime / attrib |")
    print(head + (" PyTorch ms/image | PyTorch / attrib |" if args.torch else ""))
    print("|---|---|---|---|---|---|---|" + ("---|---|" if args.torch else ""))
    for b in batches:
        a, o = statistics.median(ours[b]), statistics.median(theirs[b])
        ga, go = 2 * gmac / a * 1e3, 2 * gmac / o * 1e3
        row = (f"| {label} | {b} | {a:.1f} | {ga:.1f} ({100 * ga / peak if peak else 0:.0f} %) | {o:.1f} | {go:.1f} "
               f"({100 * go / peak if peak else 0:.0f} %) | {o / a:.2f} |")
        if args.torch:
            p = statistics.median(pt[b])
            row += f" {p:.1f} | {p / a:.2f} |"
        print(row)


if __name__ == "__main__":
    main()
