#!/usr/bin/python3
"""Ablation-CAM speed, side by side on the same machine in one run: attrib
(./attrib bench --method ablation-cam: one forward, then one partial forward
per channel from the layer) against pytorch-grad-cam's AblationCAM (one
whole-network forward per channel, its default batch of 32) on the same
network, weights and inputs, target layer features.29 (the last conv's ReLU).

  /usr/bin/python3 -m pip install --no-deps --target .peers grad-cam==1.5.7 ttach
  PYTHONPATH=.peers /usr/bin/python3 tools/bench_ablation_peers.py [--net mini|vgg16] [--images N]
      [--threads N]

mini: the shipped VGG16-mini (weights/vgg16_mini.safetensors, 128 x 128);
vgg16: VGG16 at 224 with the random weights `attrib bench` uses (seed 0,
tools/prng.py, the twin of host/model/random_model.c). Inputs: the bench's
(prng "input", seed 7). Prints seconds per image and the ratio peer / attrib
(> 1: attrib is faster), in wall time and in CPU time (steadier on a shared
machine; attrib's includes its model set-up), and the passes each spends per image (attrib: its
partial ones; pytorch-grad-cam: base_cam's forward, ablation_cam.py's own
unablated forward and one whole forward per channel).
"""
import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import predict_torch  # noqa: E402
import prng  # noqa: E402
import ref_methods  # noqa: E402
import vgg_torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYER = 29


def build(net):
    if net == "mini":
        model = predict_torch.load_model(os.path.join(ROOT, "weights", "vgg16_mini.safetensors"))[0]
        return model.eval(), 128
    state = prng.random_vgg_state("vgg16", prng.standard_widths("vgg16"), [4096, 4096], 1000, 7, 0)
    return ref_methods.TorchvisionVGG(vgg_torch.build_vgg("vgg16", state, 7)).eval(), 224


def time_pgc(model, x):
    from pytorch_grad_cam import AblationCAM
    cam = AblationCAM(model=model, target_layers=[model.features[LAYER]])
    t0, c0 = time.perf_counter(), time.process_time()
    with contextlib.redirect_stderr(io.StringIO()):  # tqdm
        for i in range(x.shape[0]):
            cam(input_tensor=x[i:i + 1], targets=None)
    t, c = (time.perf_counter() - t0) / x.shape[0], (time.process_time() - c0) / x.shape[0]
    cam.activations_and_grads.release()
    return t, c


def time_attrib(net, images, threads):
    cmd = [os.path.join(ROOT, "attrib"), "bench", "--json", "--backend", "cpu", "--method", "ablation-cam",
           "--images", str(images), "--nets", net, "--threads", str(threads)]
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = json.loads(out.splitlines()[-1])
    # CPU seconds of the whole bench process per image (model set-up included: an upper bound)
    r["cpu_per_image"] = (c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime) / images
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", default="mini", choices=("mini", "vgg16"))
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, size = build(args.net)
    x = torch.from_numpy(prng.fill("input", 7, (args.images, 3, size, size), 2.0))
    ours = time_attrib(args.net, args.images, args.threads)
    peer, peer_cpu = time_pgc(model, x)
    load = os.getloadavg()[0]
    print(f"Ablation-CAM on {args.net} at {size} ({args.images} images, features.{LAYER}, torch {torch.__version__}, "
          f"{args.threads} threads, load average {load:.1f})")
    print(f"{'tool':22} {'s/image':>9} {'CPU s/image':>12} {'passes/image':>13} {'peer/attrib':>12} {'(CPU)':>7}")
    print(f"{'attrib --backend cpu':22} {ours['s_per_image']:9.3f} {ours['cpu_per_image']:12.3f} "
          f"{ours['forwards_per_image']:13.1f} {1.0:12.2f} {1.0:7.2f}")
    C = model.features[LAYER - 1].out_channels
    print(f"{'pytorch-grad-cam':22} {peer:9.3f} {peer_cpu:12.3f} {2 + C:13d} {peer / ours['s_per_image']:12.2f} "
          f"{peer_cpu / ours['cpu_per_image']:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
