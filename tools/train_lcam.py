#!/usr/bin/python3
"""Train the L-CAM-Img module of a shipped model (docs/methods.md#l-cam).

L-CAM (Gkartzonika et al., arXiv 2209.11189; bmezaris/L-CAM) explains in one
forward: a 1x1 conv K -> n_classes with bias on the target layer's output A,
a = sigmoid(conv(A)). Training (backbone frozen, dropout off): the [0,1]
image is multiplied by Up(a_label) (bilinear, align_corners=False),
normalised and run through the whole network;
  loss = 1.5 CE(label) + 2 mean((a_label + 0.0005)^0.3) + 0.01 TV(a_label),
  TV = (sum |d_row|^2 + sum |d_col|^2 + 0.3 sum border^2) / (2 batch),
per-sample maps of the ground-truth label; SGD momentum 0.9 Nesterov, weight
decay 5e-4, lr 1e-2 (biases 2e-2), x0.75 each epoch from epoch 1, batch 64,
until the validation loss stops improving (the best epoch's weights are kept).

Data: the model's own training scenes (tools/make_scenes.py, train split,
scenes 0..N-1, resized as the model's preprocessing does) and validation
scenes 0..M-1 of the val split. The target layer's output is computed once
per scene (the backbone is frozen) and cached.

Writes <model>.lcam.safetensors: `weight` [n_classes][K][1][1], `bias`
[n_classes]; metadata: model file name and SHA-256, target layer, epochs,
seed, data, losses. And a JSON log (losses per epoch, wall time) for the card.

  nice -n 10 /usr/bin/python3 tools/train_lcam.py --model weights/vgg16_mini.safetensors
  /usr/bin/python3 tools/train_lcam.py --plot weights/lcam_loss.png LOG.json...   # the card's curves
"""

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_scenes  # noqa: E402
from export_safetensors import write_safetensors  # noqa: E402
from predict_torch import load_model  # noqa: E402
from train_resnet_mini import resize_u8  # noqa: E402

DEFAULT_LAYER = {"vgg": "features.29", "resnet": "layer4"}


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_layer(meta):
    return DEFAULT_LAYER["resnet" if meta.get("arch", "vgg16").startswith("resnet") else "vgg"]


def trunk(model, meta, layer, x):
    """The target layer's output (engine module names: features.N, layerN[.j])."""
    if meta.get("arch", "vgg16").startswith("resnet"):
        return model.trunk(x, layer)
    stop = int(layer.split(".")[1])
    for i, mod in enumerate(model.features):
        x = mod(x)
        if i == stop:
            return x
    raise ValueError("no module %s" % layer)


class Preprocess:
    """uint8 NHWC scenes -> [0,1] NCHW at the model's input size, and the
    normalisation (the file's mean/std): torchvision's Resize (PIL bilinear,
    tools/train_resnet_mini.resize_u8) + CenterCrop (the identity on square
    scenes at crop = resize) + ToTensor + Normalize."""

    def __init__(self, meta):
        self.size = int(meta.get("crop", "224"))
        if int(meta.get("resize", self.size)) != self.size:
            raise SystemExit("train_lcam: expects resize == crop (square scenes), got %s / %s"
                             % (meta.get("resize"), meta.get("crop")))
        self.mean = torch.tensor(json.loads(meta["mean"])).view(1, 3, 1, 1)
        self.std = torch.tensor(json.loads(meta["std"])).view(1, 3, 1, 1)

    def unit(self, u8):
        if u8.shape[1] != self.size:
            u8 = resize_u8(u8, self.size)
        return torch.from_numpy(np.ascontiguousarray(u8)).permute(0, 3, 1, 2).float().div(255.0)

    def norm(self, x01):
        return (x01 - self.mean) / self.std


def scenes(split, seed, count, pre, chunk=256):
    """[0,1] inputs (N,3,S,S) float16 (to keep the cache small; exact for
    k/255 up to 2^-11 relative) and labels."""
    gen = make_scenes.SceneGenerator(split, seed)
    xs, ys = [], []
    for s in range(0, count, chunk):
        imgs, labels = gen.batch(range(s, min(count, s + chunk)))
        xs.append(pre.unit(imgs).half())
        ys.append(torch.from_numpy(labels).long())
    return torch.cat(xs), torch.cat(ys)


@torch.no_grad()
def features(model, meta, layer, x01, pre, bs=128):
    return torch.cat([trunk(model, meta, layer, pre.norm(x01[i:i + bs].float())) for i in range(0, len(x01), bs)])


def tv(a):
    """(sum |d_row|^2 + sum |d_col|^2 + 0.3 sum border^2) / (2 batch), a [B,1,h,w];
    the border term sums the squares of the four edges (corners twice, as the
    differences against a zero padding would)."""
    dr = (a[:, :, 1:, :] - a[:, :, :-1, :]).pow(2).sum()
    dc = (a[:, :, :, 1:] - a[:, :, :, :-1]).pow(2).sum()
    border = (a[:, :, 0, :].pow(2).sum() + a[:, :, -1, :].pow(2).sum()
              + a[:, :, :, 0].pow(2).sum() + a[:, :, :, -1].pow(2).sum())
    return (dr + dc + 0.3 * border) / (2 * a.shape[0])


def lcam_loss(model, head, A, x01, y, pre):
    """-> (loss, CE) of L-CAM-Img on one batch (A the cached layer outputs)."""
    a = torch.sigmoid(head(A))
    al = a[torch.arange(len(y)), y].unsqueeze(1)  # the label's map [B,1,h,w]
    up = F.interpolate(al, size=x01.shape[-2:], mode="bilinear", align_corners=False)
    logits = model(pre.norm(x01 * up))
    ce = F.cross_entropy(logits, y)
    loss = 1.5 * ce + 2.0 * (al + 0.0005).pow(0.3).mean() + 0.01 * tv(al)
    return loss, ce


def evaluate(model, head, A, x01, y, pre, bs=128):
    tot, tce = 0.0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), bs):
            loss, ce = lcam_loss(model, head, A[i:i + bs], x01[i:i + bs].float(), y[i:i + bs], pre)
            tot += float(loss) * len(y[i:i + bs])
            tce += float(ce) * len(y[i:i + bs])
    return tot / len(y), tce / len(y)


def plot(png, logs):
    """Training and validation loss per epoch of each log (matplotlib)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(logs), figsize=(4.2 * len(logs), 3.2), squeeze=False)
    for ax, path in zip(axes[0], logs):
        with open(path) as f:
            log = json.load(f)
        h = log["history"]
        ax.plot([e["epoch"] for e in h], [e["val_loss"] for e in h], "o-", label="validation")
        tr = [e for e in h if "train_loss" in e]
        ax.plot([e["epoch"] for e in tr], [e["train_loss"] for e in tr], "s--", label="training (epoch mean)")
        ax.axvline(log["best_epoch"], color="grey", lw=0.8, ls=":")
        ax.set_title("%s, %s (kept: epoch %d)" % (os.path.basename(log["args"]["model"]).replace(".safetensors", ""),
                                                   log["layer"], log["best_epoch"]), fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("L-CAM loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    print("wrote", png)


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "--plot":
        if len(argv) < 3:
            raise SystemExit("usage: train_lcam.py --plot PNG LOG.json...")
        return plot(argv[1], argv[2:])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--layer", help="target layer (default features.29 for VGG, layer4 for ResNet)")
    p.add_argument("--out", help="default <model stem>.lcam.safetensors beside the model")
    p.add_argument("--log", help="JSON log (default /tmp/<model stem>.lcam.json)")
    p.add_argument("--train-count", type=int, default=4096)
    p.add_argument("--val-count", type=int, default=1024)
    p.add_argument("--max-epochs", type=int, default=20)
    p.add_argument("--patience", type=int, default=1, help="epochs without a better validation loss before stopping")
    p.add_argument("--min-delta", type=float, default=1e-3, help="smallest decrease of the validation loss that counts")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0, help="scene and torch seed")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)

    t0 = time.time()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    log = lambda *s: print("[%7.1fs]" % (time.time() - t0), *s, flush=True)
    model, meta, _, _ = load_model(a.model)
    for q in model.parameters():
        q.requires_grad_(False)
    model.eval()  # dropout off, BN in inference mode
    layer = a.layer or default_layer(meta)
    stem = os.path.basename(a.model)
    stem = stem[:-len(".safetensors")] if stem.endswith(".safetensors") else os.path.splitext(stem)[0]
    out = a.out or os.path.join(os.path.dirname(os.path.abspath(a.model)), stem + ".lcam.safetensors")
    logpath = a.log or "/tmp/%s.lcam.json" % stem
    pre = Preprocess(meta)
    sha = sha256_of(a.model)
    log("model", a.model, sha, "layer", layer, vars(a))

    xtr, ytr = scenes("train", a.seed, a.train_count, pre)
    xva, yva = scenes("val", a.seed, a.val_count, pre)
    log("scenes ready", tuple(xtr.shape), tuple(xva.shape))
    Atr = features(model, meta, layer, xtr, pre)
    Ava = features(model, meta, layer, xva, pre)
    K, n_classes = Atr.shape[1], int(meta.get("n_classes", 0)) or 10
    with torch.no_grad():
        n_classes = model(pre.norm(xva[:1].float())).shape[1]
    log("features", tuple(Atr.shape), "classes", n_classes)

    head = nn.Conv2d(K, n_classes, 1, bias=True)  # PyTorch's default init, seeded above
    opt = torch.optim.SGD([{"params": [head.weight], "lr": a.lr},
                           {"params": [head.bias], "lr": 2 * a.lr}],
                          momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.75)
    gen = torch.Generator().manual_seed(a.seed)

    v0, ce0 = evaluate(model, head, Ava, xva, yva, pre)
    history = [{"epoch": 0, "val_loss": v0, "val_ce": ce0}]
    log("epoch 0 val loss %.4f (CE %.4f)" % (v0, ce0))
    best = (v0, {k: v.clone() for k, v in head.state_dict().items()}, 0)
    steps, bad = 0, 0
    for epoch in range(1, a.max_epochs + 1):
        perm = torch.randperm(len(ytr), generator=gen)
        tl, tn = 0.0, 0
        for i in range(0, len(perm) - a.batch + 1, a.batch):  # full batches only
            idx = perm[i:i + a.batch]
            loss, _ = lcam_loss(model, head, Atr[idx], xtr[idx].float(), ytr[idx], pre)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tl += float(loss) * len(idx)
            tn += len(idx)
            steps += 1
        sched.step()
        vl, vce = evaluate(model, head, Ava, xva, yva, pre)
        history.append({"epoch": epoch, "train_loss": tl / tn, "val_loss": vl, "val_ce": vce,
                        "lr": opt.param_groups[0]["lr"], "wall_s": round(time.time() - t0, 1)})
        log("epoch %d train loss %.4f val loss %.4f (CE %.4f)" % (epoch, tl / tn, vl, vce))
        if vl < best[0] - a.min_delta:
            best, bad = (vl, {k: v.clone() for k, v in head.state_dict().items()}, epoch), 0
        else:
            bad += 1
            if bad >= a.patience:
                log("validation loss stopped improving: best epoch %d" % best[2])
                break
    head.load_state_dict(best[1])
    wall = time.time() - t0
    meta_out = {
        "format": "attrib-lcam", "method": "lcam", "model": stem + ".safetensors", "model_sha256": sha,
        "layer": layer, "epochs": str(best[2]), "epochs_run": str(history[-1]["epoch"]), "seed": str(a.seed),
        "val_loss": "%.6f" % best[0], "batch": str(a.batch), "train_steps": str(steps),
        "data": "tools/make_scenes.py train scenes 0-%d, val scenes 0-%d (seed %d)"
                % (a.train_count - 1, a.val_count - 1, a.seed),
        "source": "attrib tools/train_lcam.py (torch %s)" % torch.__version__,
    }
    w = head.weight.detach().float().numpy().reshape(n_classes, K, 1, 1)
    b = head.bias.detach().float().numpy()
    tmp = out + ".tmp"
    write_safetensors(tmp, {"weight": w, "bias": b}, meta_out)
    os.replace(tmp, out)
    with open(logpath, "w") as f:
        json.dump({"args": vars(a), "model_sha256": sha, "layer": layer, "best_epoch": best[2],
                   "best_val_loss": best[0], "wall_s": round(wall, 1), "torch": torch.__version__,
                   "history": history}, f, indent=1)
    log("wrote", out, "and", logpath, "(best epoch %d, val loss %.4f, %.0f s)" % (best[2], best[0], wall))


if __name__ == "__main__":
    main()
