#!/usr/bin/python3
"""PyTorch oracle for `./attrib predict`: top-k classes of images under a VGG
safetensors file written by tools/export_safetensors.py.

The network is rebuilt from the file alone (docs/models.md): conv widths from the
weight shapes, max-pools from the gaps between torchvision module indices,
BatchNorm where `features.N.running_mean` exists, the adaptive pool size from
metadata `avgpool` (7 when absent), preprocessing from `resize`, `crop`,
`interpolation`, `mean`, `std`, and class ids/names from `labels` (or a
sibling labels.txt). Preprocessing is torchvision's own PIL path:
  Image.open().convert("RGB") -> Resize(resize) -> CenterCrop(crop)
  -> ToTensor() -> Normalize(mean, std)
except that a 16-bit greyscale PNG is scaled to 8 bits by its high byte, as
the engine decodes it (PIL's convert("RGB") would clamp it; docs/usage.md).

  tools/predict_torch.py --model weights/vgg16_mini.safetensors -k 5 IMG...
  tools/predict_torch.py --model M --list weights/samples/list.txt --json
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_safetensors import read_safetensors  # noqa: E402


def _index(key):
    return int(key.split(".")[1])


class VGG(nn.Module):
    """torchvision.models.VGG's forward with a free avgpool size."""

    def __init__(self, features, avgpool, classifier):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((avgpool, avgpool))
        self.classifier = classifier

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def build_vgg(tensors, avgpool=7):
    """torchvision-layout VGG (optionally _bn) matching the tensors' names and
    shapes; returns the module with the tensors loaded."""
    conv_idx = sorted(_index(k) for k, v in tensors.items()
                      if k.startswith("features.") and k.endswith(".weight") and v.ndim == 4)
    if not conv_idx:
        raise ValueError("no features.N.weight conv tensors")
    bn = ("features.%d.running_mean" % (conv_idx[0] + 1)) in tensors
    step = 3 if bn else 2  # conv[, bn], relu
    layers, c_in = [], tensors["features.%d.weight" % conv_idx[0]].shape[1]
    for j, i in enumerate(conv_idx):
        if len(layers) != i:
            raise ValueError("unexpected module index features.%d" % i)
        w = tensors["features.%d.weight" % i]
        layers.append(nn.Conv2d(c_in, w.shape[0], 3, padding=1))
        if bn:
            layers.append(nn.BatchNorm2d(w.shape[0]))
        layers.append(nn.ReLU(inplace=True))
        c_in = w.shape[0]
        nxt = conv_idx[j + 1] if j + 1 < len(conv_idx) else i + step + 1
        if nxt - i == step + 1:
            layers.append(nn.MaxPool2d(2, 2))
        elif nxt - i != step:
            raise ValueError("cannot place features.%d after features.%d" % (nxt, i))
    lin = sorted(_index(k) for k in tensors if k.startswith("classifier.") and k.endswith(".weight"))
    if lin != [0, 3, 6]:
        raise ValueError("expected classifier.0/3/6, got %s" % lin)
    w0, w3, w6 = (tensors["classifier.%d.weight" % i] for i in lin)
    model = VGG(nn.Sequential(*layers), avgpool, nn.Sequential(
        nn.Linear(w0.shape[1], w0.shape[0]), nn.ReLU(True), nn.Dropout(),
        nn.Linear(w3.shape[1], w3.shape[0]), nn.ReLU(True), nn.Dropout(),
        nn.Linear(w6.shape[1], w6.shape[0])))
    if w0.shape[1] != c_in * avgpool * avgpool:
        raise ValueError("classifier.0 expects %d inputs, features give %d x %d x %d"
                         % (w0.shape[1], c_in, avgpool, avgpool))
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError("missing %s, unexpected %s" % (missing, unexpected))
    return model.eval()


def load_labels(meta, model_path, n_classes):
    if "labels" in meta:
        return [tuple(p) for p in json.loads(meta["labels"])]
    side = os.path.join(os.path.dirname(os.path.abspath(model_path)), "labels.txt")
    if os.path.exists(side):
        with open(side) as f:
            return [tuple(line.rstrip("\n").split(" ", 1)) for line in f if line.strip()]
    return [(str(i), str(i)) for i in range(n_classes)]


def load_model(path):
    """-> (model, metadata, labels, transform)."""
    from torchvision import transforms
    tensors, meta = read_safetensors(path)
    arch = meta.get("arch", "vgg16")
    if arch.startswith("resnet"):
        import resnet_torch
        model = resnet_torch.build_resnet(arch, tensors)
        n_classes = tensors["fc.weight"].shape[0]
    else:
        model = build_vgg(tensors, int(meta.get("avgpool", "7")))
        n_classes = tensors["classifier.6.weight"].shape[0]
    labels = load_labels(meta, path, n_classes)
    interp = {"bilinear": transforms.InterpolationMode.BILINEAR,
              "bicubic": transforms.InterpolationMode.BICUBIC,
              "nearest": transforms.InterpolationMode.NEAREST}[meta.get("interpolation", "bilinear")]
    transform = transforms.Compose([
        transforms.Resize(int(meta.get("resize", "256")), interpolation=interp),
        transforms.CenterCrop(int(meta.get("crop", "224"))),
        transforms.ToTensor(),
        transforms.Normalize(json.loads(meta.get("mean", "[0.485, 0.456, 0.406]")),
                             json.loads(meta.get("std", "[0.229, 0.224, 0.225]")))])
    return model, meta, labels, transform


def to_rgb(im):
    """PIL's convert("RGB"), but 16-bit grey (mode I / I;16) by its high byte."""
    from PIL import Image
    if im.format == "PNG" and im.mode in ("I", "I;16", "I;16B"):
        v = (np.asarray(im, dtype=np.int64) >> 8).clip(0, 255).astype(np.uint8)
        return Image.fromarray(v, "L").convert("RGB")
    return im.convert("RGB")


def preprocess(paths, transform):
    from PIL import Image
    xs = []
    for p in paths:
        with Image.open(p) as im:
            xs.append(transform(to_rgb(im)))
    return torch.stack(xs)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("-k", "--topk", type=int, default=5)
    p.add_argument("--list", help="file with one image path per line")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.add_argument("--truth", help="images.csv (NIPS layout) to score top-1 accuracy")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("images", nargs="*")
    a = p.parse_args(argv)
    torch.set_grad_enabled(False)
    paths = list(a.images)
    if a.list:
        with open(a.list) as f:
            paths += [line.strip() for line in f if line.strip()]
    if not paths:
        p.error("no images")
    model, meta, labels, transform = load_model(a.model)
    truth = {}
    if a.truth:
        import csv
        with open(a.truth) as f:
            truth = {r["ImageId"]: int(r["TrueLabel"]) - 1 for r in csv.DictReader(f)}
    correct = scored = 0
    for s in range(0, len(paths), a.batch):
        chunk = paths[s:s + a.batch]
        logits = model(preprocess(chunk, transform))
        probs = torch.softmax(logits, dim=1)
        top_p, top_i = probs.topk(min(a.topk, probs.shape[1]), dim=1)
        for j, path in enumerate(chunk):
            res = [{"class": int(c), "id": labels[c][0], "name": labels[c][1],
                    "prob": float(pr), "logit": float(logits[j, c])}
                   for pr, c in zip(top_p[j].tolist(), top_i[j].tolist())]
            stem = os.path.splitext(os.path.basename(path))[0]
            if stem in truth:
                scored += 1
                correct += int(res[0]["class"] == truth[stem])
            if a.json:
                print(json.dumps({"image": path, "top": res}))
            else:
                print(path)
                for r in res:
                    print("  %4d %-10s %-24s p=%.6f logit=%.6f"
                          % (r["class"], r["id"], r["name"], r["prob"], r["logit"]))
    if scored:
        print("top-1 accuracy %d/%d = %.4f" % (correct, scored, correct / scored),
              file=sys.stderr)


if __name__ == "__main__":
    main()
