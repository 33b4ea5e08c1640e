#!/usr/bin/python3
"""Score-CAM speed, side by side on the same machine in one run: attrib
(./attrib bench --method scorecam) against pytorch-grad-cam's ScoreCAM and
torchcam's ScoreCAM on the same network shape (random weights) and inputs.

  /usr/bin/python3 -m pip install --no-deps --target .peers grad-cam==1.5.7 ttach torchcam
  PYTHONPATH=.peers /usr/bin/python3 tools/bench_scorecam_peers.py [--net mini|vgg16|resnet18_mini] [--images N]
      [--device cpu|cuda] [--backend cpu|cuda] [--threads N]

Prints seconds per image for each tool and the ratio peer / attrib (> 1:
attrib is faster), in wall time and in CPU time (every thread's, the whole
attrib process's, start-up included): on a machine other jobs share, wall
times swing with the load while the CPU seconds a map takes stay put (run
with OMP_WAIT_POLICY=passive, so that no side's threads spin). pytorch-grad-cam runs its default batch of 16 masked
inputs, torchcam its default batch of 32; both on the last conv's ReLU
(VGG) or layer4 (resnet18_mini: the shipped file itself, 192 px, 128
channels, rebuilt by tools/predict_torch.py).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import predict_torch  # noqa: E402
import prng  # noqa: E402
import resnet_torch  # noqa: E402
import ref_methods  # noqa: E402
import vgg_torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETS = {
    "mini": dict(widths=[8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 64], hidden=[256, 256], classes=10,
                 size=128, avgpool=4),
    "vgg16": dict(widths=prng.standard_widths("vgg16"), hidden=[4096, 4096], classes=1000, size=224, avgpool=7),
    "resnet18_mini": dict(file="weights/resnet18_mini.safetensors", size=192),
}


def build(net, device):
    n = NETS[net]
    if "file" in n:  # pgc and torchcam hook layer4: torchvision's forward, blocks as modules
        model = predict_torch.load_model(os.path.join(ROOT, n["file"]))[0]
        return resnet_torch.use_module_forward(model).to(device).eval(), n
    state = prng.random_vgg_state("vgg16", n["widths"], n["hidden"], n["classes"], n["avgpool"], 1)
    model = ref_methods.TorchvisionVGG(vgg_torch.build_vgg("vgg16", state, n["avgpool"])).to(device).eval()
    return model, n


def target(model):
    return model.layer4 if hasattr(model, "layer4") else model.features[29]


def time_pgc(model, xs):
    from pytorch_grad_cam import ScoreCAM
    cam = ScoreCAM(model=model, target_layers=[target(model)])
    t0, c0 = time.perf_counter(), time.process_time()
    for x in xs:
        cam(input_tensor=x, targets=None)
    return (time.perf_counter() - t0) / len(xs), (time.process_time() - c0) / len(xs)


def time_torchcam(model, xs):
    from torchcam.methods import ScoreCAM
    extractor = ScoreCAM(model, target_layer="layer4" if hasattr(model, "layer4") else "features.29",
                         input_shape=tuple(xs[0].shape[1:]))
    t0, c0 = time.perf_counter(), time.process_time()
    for x in xs:
        with torch.no_grad():
            out = model(x)
        extractor(out.argmax(1).item(), out)
    t = (time.perf_counter() - t0) / len(xs), (time.process_time() - c0) / len(xs)
    extractor.remove_hooks()
    return t


def attrib_bench(cmd, images):
    """Runs `attrib bench --json ...`: (its last JSON line, CPU seconds per
    image of the whole process, every thread's, start-up included)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return json.loads(out.splitlines()[-1]), (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / images


def time_attrib(net, images, backend, threads):
    cmd = [os.path.join(ROOT, "attrib"), "bench", "--json", "--method", "scorecam", "--images", str(images),
           "--backend", backend]
    cmd += ["--nets", "model", "--model", os.path.join(ROOT, NETS[net]["file"])] if "file" in NETS[net] else [
        "--nets", "vgg16" if net == "vgg16" else "mini"]
    if threads:
        cmd += ["--threads", str(threads)]
    line, cpu = attrib_bench(cmd, images)
    return line["s_per_image"], cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", default="mini", choices=NETS)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, n = build(args.net, args.device)
    xs = [torch.from_numpy(prng.fill("input", 7 + i, (1, 3, n["size"], n["size"]), 2.0)).to(args.device)
          for i in range(args.images)]
    ours = time_attrib(args.net, args.images, args.backend, args.threads)
    print(f"Score-CAM on {args.net} ({args.images} images, torch {torch.__version__} on {args.device}, "
          f"attrib --backend {args.backend}, {args.threads} threads)")
    print(f"{'tool':20} {'s/image':>9} {'peer/attrib':>12} {'cpu s/image':>12} {'cpu peer/attrib':>16}")
    print(f"{'attrib':20} {ours[0]:9.3f} {1.0:12.2f} {ours[1]:12.3f} {1.0:16.2f}")
    for name, fn in (("pytorch-grad-cam", time_pgc), ("torchcam", time_torchcam)):
        try:
            t = fn(model, xs)
            print(f"{name:20} {t[0]:9.3f} {t[0] / ours[0]:12.2f} {t[1]:12.3f} {t[1] / ours[1]:16.2f}")
        except ImportError as e:
            print(f"{name:20} skipped: {e} (install it into .peers, see --help)")


if __name__ == "__main__":
    main()
