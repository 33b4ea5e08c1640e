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

Data: a fresh seeded stream of train scenes (batch b = scenes b*B..b*B+B-1),
none seen twice; validation and test are scenes 0..N-1 of the val and test
splits. The normalisation statistics are VGG16-mini's (the same 2000 train
scenes).

  nice -n 10 /usr/bin/python3 tools/train_resnet_mini.py \
      --out weights/resnet18_mini.safetensors
"""

import argparse
import copy
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_scenes  # noqa: E402
from export_safetensors import vgg_metadata, write_safetensors  # noqa: E402
from train_mini import accuracy_report  # noqa: E402
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


class SceneBatches(torch.utils.data.Dataset):
    """Batch b = train scenes [b*B, (b+1)*B), resized, uint8 NHWC + labels."""

    def __init__(self, seed, batch, steps):
        self.seed, self.batch, self.steps = seed, batch, steps
        self.gen = None

    def __len__(self):
        return self.steps

    def __getitem__(self, b):
        if self.gen is None:
            self.gen = make_scenes.SceneGenerator("train", self.seed)
        imgs, labels = self.gen.batch(range(b * self.batch, (b + 1) * self.batch))
        return torch.from_numpy(resize_u8(imgs)), torch.from_numpy(labels)


def to_input(u8_nhwc, mean, std):
    """ToTensor + Normalize (CenterCrop(192) is the identity at 192x192)."""
    x = u8_nhwc.permute(0, 3, 1, 2).float().div(255.0)
    return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def fixed_set(split, seed, count):
    imgs, labels = make_scenes.SceneGenerator(split, seed).batch(range(count))
    return torch.from_numpy(resize_u8(imgs)), torch.from_numpy(labels)


@torch.no_grad()
def logits_of(model, imgs, mean, std, bs=100):
    model.eval()
    return torch.cat([model(to_input(imgs[i:i + bs], mean, std)) for i in range(0, len(imgs), bs)])


def fold_bn_logits(model, imgs, mean, std):
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
    return logits_of(m, imgs, mean, std)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3, help="OneCycle peak (AdamW)")
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0, help="data and torch seed")
    p.add_argument("--val-count", type=int, default=2000)
    p.add_argument("--test-count", type=int, default=2000)
    p.add_argument("--stat-count", type=int, default=2000,
                   help="train scenes (128 px) used for the normalisation mean/std")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--threads", type=int, default=1,
                   help="1: a second OpenMP thread stalls at barriers when the cores are shared")
    p.add_argument("--workers", type=int, default=1, help="scene-generating processes")
    p.add_argument("--out", default="weights/resnet18_mini.safetensors")
    p.add_argument("--metrics", default="/tmp/train_resnet_mini_metrics.json")
    p.add_argument("--checkpoint", default="/tmp/train_resnet_mini.pt")
    a = p.parse_args(argv)

    t_start = time.time()
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(a.threads)
    log = lambda *s: print("[%7.1fs]" % (time.time() - t_start), *s, flush=True)
    log("torch", torch.__version__, "numpy", np.__version__, "threads", a.threads, vars(a))

    # VGG16-mini's statistics: the 128-px training scenes 0..stat_count-1.
    stat_imgs, _ = make_scenes.SceneGenerator("train", a.seed).batch(range(a.stat_count))
    px = stat_imgs.reshape(-1, 3).astype(np.float64) / 255.0
    mean_l = [round(float(v), 4) for v in px.mean(0)]
    std_l = [round(float(v), 4) for v in px.std(0)]
    del stat_imgs, px
    mean, std = torch.tensor(mean_l), torch.tensor(std_l)
    log("mean", mean_l, "std", std_l)

    val_imgs, val_labels = fixed_set("val", a.seed, a.val_count)
    log("val set ready")

    model = ResNetW(BasicBlock, [2, 2, 2, 2], WIDTHS, STEM, make_scenes.NUM_CLASSES,
                    zero_init_residual=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.wd)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=a.steps,
                                                pct_start=0.15, div_factor=20, final_div_factor=200)
    loader = torch.utils.data.DataLoader(
        SceneBatches(a.seed, a.batch, a.steps), batch_size=None, shuffle=False,
        num_workers=a.workers, prefetch_factor=4 if a.workers else 2,
        worker_init_fn=lambda _: torch.set_num_threads(1))

    best = (-1.0, None, -1)
    run_loss, run_acc, n_seen, t_block = 0.0, 0.0, 0, time.time()
    for step, (imgs, labels) in enumerate(loader, 1):
        model.train()
        logits = model(to_input(imgs, mean, std))
        loss = nn.functional.cross_entropy(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        run_loss += float(loss) * len(labels)
        run_acc += float((logits.argmax(1) == labels).sum())
        n_seen += len(labels)
        if step % a.eval_every == 0 or step == a.steps:
            rep = accuracy_report(logits_of(model, val_imgs, mean, std), val_labels)
            log("step %d/%d lr %.2e train loss %.4f acc %.4f | val acc %.4f | %.2f s/step"
                % (step, a.steps, sched.get_last_lr()[0], run_loss / n_seen,
                   run_acc / n_seen, rep["overall"], (time.time() - t_block) / (n_seen / a.batch)))
            run_loss, run_acc, n_seen, t_block = 0.0, 0.0, 0, time.time()
            if rep["overall"] > best[0]:
                best = (rep["overall"], copy.deepcopy(model.state_dict()), step)
                torch.save({"state": best[1], "step": step, "mean": mean_l, "std": std_l},
                           a.checkpoint)
    train_s = time.time() - t_start
    log("best val acc %.4f at step %d" % (best[0], best[2]))
    model.load_state_dict(best[1])
    model.eval()

    # Export (BN kept, torchvision names), then rebuild from the file alone.
    labels_meta = list(zip(make_scenes.WNIDS, make_scenes.CLASS_NAMES))
    meta = vgg_metadata(
        "resnet18_mini", labels_meta, mean_l, std_l, resize=INPUT, crop=INPUT, avgpool=1,
        interpolation="bilinear", arch="resnet18",
        source="attrib tools/train_resnet_mini.py (seed %d, %d steps x %d, torch %s); data: "
               "tools/make_scenes.py scenes of Fashion-MNIST (MIT, Zalando Research)"
               % (a.seed, a.steps, a.batch, torch.__version__))
    meta["bn_eps"] = repr(BN_EPS)
    sd = [(k, v.detach().float()) for k, v in model.state_dict().items()
          if not k.endswith("num_batches_tracked")]
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    write_safetensors(a.out, sd, meta)
    from predict_torch import load_model
    plain, _, _, _ = load_model(a.out)

    val_trained = logits_of(model, val_imgs, mean, std)
    val_plain = logits_of(plain, val_imgs, mean, std)
    reload_err = float((val_trained - val_plain).abs().max())
    fold_err = float((val_trained - fold_bn_logits(model, val_imgs, mean, std)).abs().max())
    log("reload check: max |logit diff| over val = %.3g; BN folded: %.3g" % (reload_err, fold_err))
    if reload_err != 0.0 or fold_err > 1e-3:
        raise SystemExit("export mismatch: reload %.3g, folded %.3g" % (reload_err, fold_err))
    del val_imgs
    test_imgs, test_labels = fixed_set("test", a.seed, a.test_count)
    val_rep = accuracy_report(val_plain, val_labels)
    test_rep = accuracy_report(logits_of(plain, test_imgs, mean, std), test_labels)
    metrics = {"torch": torch.__version__, "numpy": np.__version__, "threads": a.threads,
               "args": vars(a), "mean": mean_l, "std": std_l, "best_step": best[2],
               "params": sum(int(q.numel()) for q in model.parameters()),
               "train_wall_s": round(train_s, 1), "total_wall_s": round(time.time() - t_start, 1),
               "fold_max_abs_logit_diff": fold_err, "val": val_rep, "test": test_rep}
    with open(a.metrics, "w") as f:
        json.dump(metrics, f, indent=1)
    log("val", json.dumps(val_rep))
    log("test", json.dumps(test_rep))
    log("wrote", a.out, "and", a.metrics)


if __name__ == "__main__":
    main()
