#!/usr/bin/python3
"""Train VGG16-mini on generated Fashion-MNIST scenes (CPU) and export it.

VGG16-mini is torchvision's VGG16 topology at 1/8 width (conv channels
8,8,M,16,16,M,32,32,32,M,64,64,64,M,64,64,64,M), AdaptiveAvgPool2d(4) and a
classifier Linear(1024,256)-ReLU-Dropout-Linear(256,256)-ReLU-Dropout-
Linear(256,10), on 128x128 inputs. It trains with BatchNorm after every conv;
the export folds each BN into its conv, so the file is a plain VGG16-mini
with torchvision key names (features.0.weight ... classifier.6.bias), and the
folded network is checked against the BN network in eval mode.

Data: a fresh seeded stream of train scenes (tools/make_scenes.py, scene i of
the stream is batch i // batch), so no scene is seen twice; validation and
test are fixed sets of scenes 0..N-1 of the val and test splits.

  nice -n 5 /usr/bin/python3 tools/train_mini.py --steps 1800 \
      --out weights/vgg16_mini.safetensors
"""

import argparse
import copy
import json
import os
import sys
import time
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_scenes  # noqa: E402
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


class SceneBatches(torch.utils.data.Dataset):
    """Batch b = train scenes [b*B, (b+1)*B) as uint8 NHWC + labels."""

    def __init__(self, seed, batch, steps, first_batch=0):
        self.seed, self.batch, self.steps, self.first = seed, batch, steps, first_batch
        self.gen = None

    def __len__(self):
        return self.steps

    def __getitem__(self, b):
        if self.gen is None:
            self.gen = make_scenes.SceneGenerator("train", self.seed)
        s = (self.first + b) * self.batch
        imgs, labels = self.gen.batch(range(s, s + self.batch))
        return torch.from_numpy(imgs), torch.from_numpy(labels)


def to_input(u8_nhwc, mean, std):
    """torchvision ToTensor + Normalize on uint8 NHWC scenes (Resize(128) and
    CenterCrop(128) are the identity on 128x128 images)."""
    x = u8_nhwc.permute(0, 3, 1, 2).float().div(255.0)
    return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def fixed_set(split, seed, count):
    imgs, labels = make_scenes.SceneGenerator(split, seed).batch(range(count))
    return torch.from_numpy(imgs), torch.from_numpy(labels)


@torch.no_grad()
def logits_of(model, imgs, mean, std, bs=200):
    model.eval()
    return torch.cat([model(to_input(imgs[i:i + bs], mean, std)) for i in range(0, len(imgs), bs)])


def accuracy_report(logits, labels):
    pred = logits.argmax(1)
    per = {}
    for c in range(make_scenes.NUM_CLASSES):
        m = labels == c
        per[make_scenes.CLASS_NAMES[c]] = round(float((pred[m] == c).float().mean()), 4)
    return {"overall": round(float((pred == labels).float().mean()), 4), "per_class": per,
            "count": int(len(labels))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=1800)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3, help="OneCycle peak (AdamW)")
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0, help="data and torch seed")
    p.add_argument("--val-count", type=int, default=2000)
    p.add_argument("--test-count", type=int, default=2000)
    p.add_argument("--stat-count", type=int, default=2000,
                   help="train scenes used for the normalisation mean/std")
    p.add_argument("--eval-every", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=1, help="scene-generating processes")
    p.add_argument("--out", default="weights/vgg16_mini.safetensors")
    p.add_argument("--metrics", default="/tmp/train_mini_metrics.json")
    p.add_argument("--checkpoint", default="/tmp/train_mini_bn.pt")
    a = p.parse_args(argv)

    t_start = time.time()
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(a.threads)
    log = lambda *s: print("[%7.1fs]" % (time.time() - t_start), *s, flush=True)
    log("torch", torch.__version__, "numpy", np.__version__, "threads", a.threads, vars(a))

    # Normalisation statistics of the training stream (scenes 0..stat_count-1).
    stat_imgs, _ = make_scenes.SceneGenerator("train", a.seed).batch(range(a.stat_count))
    px = stat_imgs.reshape(-1, 3).astype(np.float64) / 255.0
    mean_l = [round(float(v), 4) for v in px.mean(0)]
    std_l = [round(float(v), 4) for v in px.std(0)]
    del stat_imgs, px
    mean, std = torch.tensor(mean_l), torch.tensor(std_l)
    log("mean", mean_l, "std", std_l)

    val_imgs, val_labels = fixed_set("val", a.seed, a.val_count)
    log("val set ready")

    model = VGGMiniBN(dropout=a.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.wd)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=a.steps,
                                                pct_start=0.15, div_factor=20, final_div_factor=200)
    loader = torch.utils.data.DataLoader(
        SceneBatches(a.seed, a.batch, a.steps), batch_size=None, shuffle=False,
        num_workers=a.workers, prefetch_factor=4 if a.workers else 2,
        worker_init_fn=lambda _: torch.set_num_threads(1))

    best = (-1.0, None, -1)
    run_loss, run_acc, n_seen = 0.0, 0.0, 0
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
            log("step %d/%d lr %.2e train loss %.4f acc %.4f | val acc %.4f"
                % (step, a.steps, sched.get_last_lr()[0], run_loss / n_seen,
                   run_acc / n_seen, rep["overall"]))
            run_loss, run_acc, n_seen = 0.0, 0.0, 0
            if rep["overall"] > best[0]:
                best = (rep["overall"], copy.deepcopy(model.state_dict()), step)
                torch.save({"state": best[1], "step": step, "mean": mean_l, "std": std_l},
                           a.checkpoint)
    train_s = time.time() - t_start
    log("best val acc %.4f at step %d" % (best[0], best[2]))
    model.load_state_dict(best[1])
    model.eval()

    # Export the folded plain network, then rebuild it from the file alone.
    labels_meta = list(zip(make_scenes.WNIDS, make_scenes.CLASS_NAMES))
    meta = vgg_metadata(
        "vgg16_mini", labels_meta, mean_l, std_l, resize=128, crop=128, avgpool=AVGPOOL,
        interpolation="bilinear", arch="vgg16",
        source="attrib tools/train_mini.py (seed %d, %d steps x %d, torch %s); data: "
               "tools/make_scenes.py scenes of Fashion-MNIST (MIT, Zalando Research)"
               % (a.seed, a.steps, a.batch, torch.__version__))
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    write_vgg(a.out, fold_bn(model), meta)
    from predict_torch import load_model
    plain, _, _, _ = load_model(a.out)

    val_bn = logits_of(model, val_imgs, mean, std)
    val_plain = logits_of(plain, val_imgs, mean, std)
    fold_err = float((val_bn - val_plain).abs().max())
    log("fold check: max |logit(BN) - logit(folded)| over val = %.3g" % fold_err)
    if fold_err > 1e-3:
        raise SystemExit("BN folding mismatch %.3g" % fold_err)
    del val_imgs
    test_imgs, test_labels = fixed_set("test", a.seed, a.test_count)
    val_rep = accuracy_report(val_plain, val_labels)
    test_rep = accuracy_report(logits_of(plain, test_imgs, mean, std), test_labels)
    metrics = {"torch": torch.__version__, "numpy": np.__version__, "threads": a.threads,
               "args": vars(a), "mean": mean_l, "std": std_l, "best_step": best[2],
               "train_wall_s": round(train_s, 1), "total_wall_s": round(time.time() - t_start, 1),
               "fold_max_abs_logit_diff": fold_err, "val": val_rep, "test": test_rep}
    with open(a.metrics, "w") as f:
        json.dump(metrics, f, indent=1)
    log("val", json.dumps(val_rep))
    log("test", json.dumps(test_rep))
    log("wrote", a.out, "and", a.metrics)


if __name__ == "__main__":
    main()
