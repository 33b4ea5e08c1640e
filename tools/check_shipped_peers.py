#!/usr/bin/python3
"""pytorch-grad-cam on the shipped models and their committed samples, against
the engine: Score-CAM, Grad-CAM and Grad-CAM++ at the last conv layer
(VGG16-mini features.29, ResNet18-mini layer4), pgc's conventions
(`explain --variant pgc`). The networks are the files themselves, rebuilt by
tools/predict_torch.py with the file's own preprocessing.

  /usr/bin/python3 -m pip install --no-deps --target .peers grad-cam==1.5.7 ttach
  PYTHONPATH=.peers /usr/bin/python3 tools/check_shipped_peers.py [--images N]
      [--write-goldens DIR]

Prints max |pgc - attrib| per (model, method) and exits 1 over the tolerance.
--write-goldens saves pgc's maps as DIR/<model>/<stem>.<method>.npy (float32)
and DIR/cases.json: tests/test_shipped_model.c holds the engine to them in CI.
"""
import argparse
import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import predict_torch  # noqa: E402
import resnet_torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = [("vgg16_mini", "features.29"), ("resnet18_mini", "layer4")]
METHODS = ("scorecam", "gradcam", "gradcam++")
# pgc scores and resizes in float32 (cv2), the engine runs float32 with its
# own resize of the image: the maps (in [0,1]) agreed to 5.4e-7 on 4 samples.
TOL = 1e-5


def samples(n):
    with open(os.path.join(ROOT, "weights", "samples", "list.txt")) as f:
        paths = [os.path.join(ROOT, line.strip()) for line in f if line.strip()]
    return paths[:n]


def target_module(model, layer):
    if layer.startswith("features."):
        return model.features[int(layer.split(".")[1])]
    return getattr(model, layer)


def pgc_maps(model, x, layer, method):
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    with torch.no_grad():
        classes = model(x).argmax(1).tolist()
    cls = {"scorecam": ScoreCAM, "gradcam": GradCAM, "gradcam++": GradCAMPlusPlus}[method]
    out = []
    for i, c in enumerate(classes):  # one image per call: pgc's Score-CAM batches masks, not images
        cam = cls(model=model, target_layers=[target_module(model, layer)])
        with contextlib.redirect_stderr(io.StringIO()):
            out.append(cam(input_tensor=x[i:i + 1], targets=[ClassifierOutputTarget(c)])[0])
        cam.activations_and_grads.release()
    return out


def attrib_maps(model_file, paths, method, layer, tmp):
    out = os.path.join(tmp, method)
    subprocess.run([os.path.join(ROOT, "attrib"), "explain", "--backend", "cpu", "--quiet", "--no-overlay",
                    "--model", model_file, "--method", method, "--variant", "pgc", "--layer", layer,
                    "--out", out] + paths, check=True, cwd=ROOT)
    res = {}
    with open(os.path.join(out, "results.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            res[r["image"]] = np.load(r["map"])
    return [res[p] for p in paths]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--write-goldens", default=None, metavar="DIR")
    a = ap.parse_args()
    torch.set_num_threads(2)
    paths = samples(a.images)
    failed, cases = 0, []
    with tempfile.TemporaryDirectory() as tmp:
        for name, layer in MODELS:
            model_file = os.path.join(ROOT, "weights", name + ".safetensors")
            model, meta, labels, transform = predict_torch.load_model(model_file)
            if hasattr(model, "layer4"):  # pgc hooks layer4: torchvision's forward, blocks as modules
                resnet_torch.use_module_forward(model)
            model.eval()
            x = predict_torch.preprocess(paths, transform)
            for method in METHODS:
                peer = pgc_maps(model, x, layer, method)
                ours = attrib_maps(model_file, paths, method, layer, os.path.join(tmp, name))
                d = max(float(np.abs(p - o).max()) for p, o in zip(peer, ours))
                ok = d <= TOL
                failed += not ok
                print(f"{name:<14} {method:<10} max |pgc - attrib| {d:.3g} (tol {TOL:g}) {'OK' if ok else 'NOT OK'}")
                if a.write_goldens:
                    d_out = os.path.join(a.write_goldens, name)
                    os.makedirs(d_out, exist_ok=True)
                    for p, m in zip(paths, peer):
                        stem = os.path.splitext(os.path.basename(p))[0]
                        np.save(os.path.join(d_out, f"{stem}.{method}.npy"), m.astype(np.float32))
                    with open(model_file, "rb") as f:
                        sha = hashlib.sha256(f.read()).hexdigest()
                    cases.append(dict(model=name, model_sha256=sha, layer=layer, method=method, max_diff=d))
    if a.write_goldens:
        import pytorch_grad_cam
        with open(os.path.join(a.write_goldens, "cases.json"), "w") as f:
            json.dump(dict(peer="pytorch-grad-cam " + getattr(pytorch_grad_cam, "__version__", "1.5.7"),
                           images=[os.path.relpath(p, ROOT) for p in paths], tol=TOL, cases=cases), f, indent=1)
    print("Result =", "FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
