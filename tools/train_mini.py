#!/usr/bin/python3
"""Train VGG16-mini on generated Fashion-MNIST scenes (CPU) and export it.

VGG16-mini is torchvision's VGG16 topology at 1/8 width (conv channels
8,8,M,16,16,M,32,32,32,M,64,64,64,M,64,64,64,M), AdaptiveAvgPool2d(4) and a
classifier Linear(1024,256)-ReLU-Dropout-Linear(256,256)-ReLU-Dropout-
Linear(256,10), on 128x128 inputs. It trains with BatchNorm after every conv;
the export folds each BN into its conv, so the file is a plain VGG16-mini
with torchvision key names (features.0.weight ... classifier.6.bias), and the
folded network is checked against the BN network in eval mode.

Data and the training loop: tools/train_loop.py (shared with
tools/train_resnet_mini.py).

  nice -n 5 /usr/bin/python3 tools/train_mini.py --steps 1800 \
      --out weights/vgg16_mini.safetensors
"""

import argparse
import os
import sys
from collections import OrderedDict

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_scenes  # noqa: E402
import train_loop  # noqa: E402
from export_safetensors import vgg_metadata, write_vgg  # noqa: E402

CFG = [8, 8, "M", 16, 16, "M", 32, 32, 32, "M", 64, 64, 64, "M", 64, 64, 64, "M"]
AVGPOOL = 4
HIDDEN = 256


class VGGMiniBN(nn.Module):
    def __init__(self, num_classes=10, dropout=0.5):
        super().__init__()
        layers, c = [], 3
        for v in CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((AVGPOOL, AVGPOOL))
        self.classifier = nn.Sequential(
            nn.Linear(c * AVGPOOL * AVGPOOL, HIDDEN), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(HIDDEN, HIDDEN), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(HIDDEN, num_classes))
        for m in self.modules():  # torchvision VGG's conv init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def fold_bn(model):
    """-> plain torchvision VGG16-mini state dict (BN folded into the convs).
    BN(conv(x)) = s * (W x + b - mu) + beta, s = gamma / sqrt(var + eps)."""
    out = OrderedDict()
    mods = list(model.features)
    plain_idx = 0
    for i, m in enumerate(mods):
        if isinstance(m, nn.Conv2d):
            bn = mods[i + 1]
            s = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
            w = m.weight.detach().double() * s[:, None, None, None]
            b = (m.bias.detach().double() - bn.running_mean.double()) * s + bn.bias.detach().double()
            out["features.%d.weight" % plain_idx] = w.float()
            out["features.%d.bias" % plain_idx] = b.float()
            plain_idx += 2  # conv, relu
        elif isinstance(m, nn.MaxPool2d):
            plain_idx += 1
    for k, v in model.classifier.state_dict().items():
        out["classifier." + k] = v.detach().float().clone()
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    train_loop.add_arguments(
        p, "train_mini", steps=1800, eval_every=300, threads=2, out="weights/vgg16_mini.safetensors",
        checkpoint="/tmp/train_mini_bn.pt",
        extra=lambda p: p.add_argument("--dropout", type=float, default=0.2))
    a = p.parse_args(argv)
    run = train_loop.Run(a)
    run.statistics()
    model = VGGMiniBN(dropout=a.dropout)
    run.train(model)

    # Export the folded plain network, then rebuild it from the file alone.
    labels_meta = list(zip(make_scenes.WNIDS, make_scenes.CLASS_NAMES))
    meta = vgg_metadata(
        "vgg16_mini", labels_meta, run.mean_l, run.std_l, resize=128, crop=128, avgpool=AVGPOOL,
        interpolation="bilinear", arch="vgg16", source=run.source("train_mini.py"))
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    write_vgg(a.out, fold_bn(model), meta)
    from predict_torch import load_model
    plain, _, _, _ = load_model(a.out)

    val_bn = run.logits(model, run.val_imgs)
    val_plain = run.logits(plain, run.val_imgs)
    fold_err = float((val_bn - val_plain).abs().max())
    run.log("fold check: max |logit(BN) - logit(folded)| over val = %.3g" % fold_err)
    if fold_err > 1e-3:
        raise SystemExit("BN folding mismatch %.3g" % fold_err)
    run.finish(plain, val_plain, fold_err)


if __name__ == "__main__":
    main()
