#!/usr/bin/python3
"""Train ResNet18-mini on generated Fashion-MNIST scenes (CPU) and export it.

ResNet18-mini is torchvision's ResNet-18 (conv1 7x7/2, bn1, relu, maxpool
3x3/2, layer1..4 of two BasicBlocks, downsample.0/1 where the shape changes,
global avgpool, fc) at 1/4 width: stem and stages 16/16/32/64/128, on 192x192
inputs. Key names are torchvision's, so torchvision-style code and the
engine read the file; the BatchNorm tensors are kept (metadata bn_eps) and
folded at load, as for the VGG _bn exports (docs/models.md).

Input: the same 128x128 scenes as VGG16-mini (tools/make_scenes.py), taken
to 192x192 by the file's own preprocessing (Resize(192), bilinear, PIL), so
the shipped samples and test scenes serve both models. 192 = 1.5 x 128
halves exactly at every stride (96, 48, 24, 12, 6): layer4 is 6x6 and each
of its cells covers one 32x32 input block.

Data and the training loop: tools/train_loop.py (shared with
tools/train_mini.py); the normalisation statistics are VGG16-mini's (the
same 2000 train scenes).

  nice -n 10 /usr/bin/python3 tools/train_resnet_mini.py \
      --out weights/resnet18_mini.safetensors
"""

import argparse
import copy
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_scenes  # noqa: E402
from export_safetensors import vgg_metadata, write_safetensors  # noqa: E402
import train_loop  # noqa: E402
from torchvision.models.resnet import BasicBlock, ResNet  # noqa: E402

STEM, WIDTHS = 16, (16, 32, 64, 128)
INPUT = 192
BN_EPS = 1e-5


class ResNetW(ResNet):
    """torchvision's ResNet (its _make_layer, forward and BasicBlock, so the
    state-dict keys are torchvision's) with the stem and stage widths as
    parameters instead of 64 and 64/128/256/512; __init__ as torchvision's."""

    def __init__(self, block, layers, widths, stem, num_classes, zero_init_residual=False):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = stem
        self.dilation, self.groups, self.base_width = 1, 1, 64
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, widths[0], layers[0])
        self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)


def resize_u8(imgs, size=INPUT):
    """torchvision Resize(size) on PIL images (bilinear, Pillow's filter), as
    the engine and tools/predict_torch.py preprocess: (N,H,W,3) uint8 ->
    (N,size,size,3) uint8 (the scenes are square)."""
    from PIL import Image
    out = np.empty((len(imgs), size, size, 3), np.uint8)
    for j, im in enumerate(imgs):
        out[j] = np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR))
    return out


def fold_bn_logits(run, model, imgs):
    """Logits of a copy with every BN folded into its conv (as the engine
    loads the file): how far float32 folding moves them."""
    m = copy.deepcopy(model).eval()
    pairs = [("conv1", "bn1")]
    for name, mod in m.named_modules():
        if hasattr(mod, "conv1") and hasattr(mod, "bn1") and name:
            pairs += [(name + ".conv%d" % i, name + ".bn%d" % i) for i in (1, 2, 3)
                      if hasattr(mod, "conv%d" % i)]
            if mod.downsample is not None:
                pairs.append((name + ".downsample.0", name + ".downsample.1"))
    mods = dict(m.named_modules())
    for cn, bn_name in pairs:
        conv, bn = mods[cn], mods[bn_name]
        s = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        conv.weight.data = (conv.weight.double() * s[:, None, None, None]).float()
        conv.bias = nn.Parameter(((-bn.running_mean.double()) * s + bn.bias.double()).float())
        parent, _, leaf = bn_name.rpartition(".")
        setattr(mods[parent] if parent else m, leaf, nn.Identity())
    return run.logits(m, imgs)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    train_loop.add_arguments(
        p, "train_resnet_mini", steps=5000, eval_every=500, threads=1,
        out="weights/resnet18_mini.safetensors", checkpoint="/tmp/train_resnet_mini.pt",
        threads_help="1: a second OpenMP thread stalls at barriers when the cores are shared",
        stat_help="train scenes (128 px) used for the normalisation mean/std")
    a = p.parse_args(argv)
    run = train_loop.Run(a, prep=resize_u8, eval_bs=100)
    run.statistics()
    model = ResNetW(BasicBlock, [2, 2, 2, 2], WIDTHS, STEM, make_scenes.NUM_CLASSES,
                    zero_init_residual=True)
    run.train(model)

    # Export (BN kept, torchvision names), then rebuild from the file alone.
    labels_meta = list(zip(make_scenes.WNIDS, make_scenes.CLASS_NAMES))
    meta = vgg_metadata(
        "resnet18_mini", labels_meta, run.mean_l, run.std_l, resize=INPUT, crop=INPUT, avgpool=1,
        interpolation="bilinear", arch="resnet18", source=run.source("train_resnet_mini.py"))
    meta["bn_eps"] = repr(BN_EPS)
    sd = [(k, v.detach().float()) for k, v in model.state_dict().items()
          if not k.endswith("num_batches_tracked")]
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    write_safetensors(a.out, sd, meta)
    from predict_torch import load_model
    plain, _, _, _ = load_model(a.out)

    val_trained = run.logits(model, run.val_imgs)
    val_plain = run.logits(plain, run.val_imgs)
    reload_err = float((val_trained - val_plain).abs().max())
    fold_err = float((val_trained - fold_bn_logits(run, model, run.val_imgs)).abs().max())
    run.log("reload check: max |logit diff| over val = %.3g; BN folded: %.3g" % (reload_err, fold_err))
    if reload_err != 0.0 or fold_err > 1e-3:
        raise SystemExit("export mismatch: reload %.3g, folded %.3g" % (reload_err, fold_err))
    run.finish(plain, val_plain, fold_err, {"params": sum(int(q.numel()) for q in model.parameters())})


if __name__ == "__main__":
    main()
