"""What training VGG16-mini (tools/train_mini.py) and ResNet18-mini
(tools/train_resnet_mini.py) share: the arguments, seeding, the scene stream
and fixed sets, the normalisation statistics, AdamW under OneCycle with the
best validation step kept, and the accuracy reports and metrics file.

Data: a fresh seeded stream of train scenes (tools/make_scenes.py; batch b is
scenes b*B..b*B+B-1), none seen twice; validation and test are scenes 0..N-1
of the val and test splits. A script's `prep` takes uint8 NHWC scenes to its
input size (None: the scenes' own 128x128).
"""

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


def add_arguments(p, name, steps, eval_every, threads, out, checkpoint, threads_help=None,
                  stat_help="train scenes used for the normalisation mean/std", extra=None):
    """The shared options; extra(p) adds a script's own after --wd."""
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3, help="OneCycle peak (AdamW)")
    p.add_argument("--wd", type=float, default=5e-4)
    if extra:
        extra(p)
    p.add_argument("--seed", type=int, default=0, help="data and torch seed")
    p.add_argument("--val-count", type=int, default=2000)
    p.add_argument("--test-count", type=int, default=2000)
    p.add_argument("--stat-count", type=int, default=2000, help=stat_help)
    p.add_argument("--eval-every", type=int, default=eval_every)
    p.add_argument("--threads", type=int, default=threads, help=threads_help)
    p.add_argument("--workers", type=int, default=1, help="scene-generating processes")
    p.add_argument("--out", default=out)
    p.add_argument("--metrics", default="/tmp/%s_metrics.json" % name)
    p.add_argument("--checkpoint", default=checkpoint)


class SceneBatches(torch.utils.data.Dataset):
    """Batch b = train scenes [b*B, (b+1)*B) as uint8 NHWC (after prep) + labels."""

    def __init__(self, seed, batch, steps, prep=None):
        self.seed, self.batch, self.steps, self.prep = seed, batch, steps, prep
        self.gen = None

    def __len__(self):
        return self.steps

    def __getitem__(self, b):
        if self.gen is None:
            self.gen = make_scenes.SceneGenerator("train", self.seed)
        imgs, labels = self.gen.batch(range(b * self.batch, (b + 1) * self.batch))
        return torch.from_numpy(self.prep(imgs) if self.prep else imgs), torch.from_numpy(labels)


def fixed_set(split, seed, count, prep=None):
    imgs, labels = make_scenes.SceneGenerator(split, seed).batch(range(count))
    return torch.from_numpy(prep(imgs) if prep else imgs), torch.from_numpy(labels)


def to_input(u8_nhwc, mean, std):
    """torchvision ToTensor + Normalize (Resize and CenterCrop to the input
    size are the identity on scenes already that size)."""
    x = u8_nhwc.permute(0, 3, 1, 2).float().div(255.0)
    return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


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


class Run:
    """One training run: seeded at creation, then the statistics, the
    validation set, the loop and the metrics, logging with the wall time."""

    def __init__(self, a, prep=None, eval_bs=200):
        self.a, self.prep, self.eval_bs = a, prep, eval_bs
        self.t_start = time.time()
        torch.manual_seed(a.seed)
        np.random.seed(a.seed)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(a.threads)
        self.log("torch", torch.__version__, "numpy", np.__version__, "threads", a.threads, vars(a))

    def log(self, *s):
        print("[%7.1fs]" % (time.time() - self.t_start), *s, flush=True)

    def logits(self, model, imgs):
        return logits_of(model, imgs, self.mean, self.std, self.eval_bs)

    def statistics(self):
        """Mean and std of the 128-px training scenes 0..stat_count-1, and the validation set."""
        stat_imgs, _ = make_scenes.SceneGenerator("train", self.a.seed).batch(range(self.a.stat_count))
        px = stat_imgs.reshape(-1, 3).astype(np.float64) / 255.0
        self.mean_l = [round(float(v), 4) for v in px.mean(0)]
        self.std_l = [round(float(v), 4) for v in px.std(0)]
        del stat_imgs, px
        self.mean, self.std = torch.tensor(self.mean_l), torch.tensor(self.std_l)
        self.log("mean", self.mean_l, "std", self.std_l)
        self.val_imgs, self.val_labels = fixed_set("val", self.a.seed, self.a.val_count, self.prep)
        self.log("val set ready")

    def train(self, model):
        """AdamW under OneCycle; model ends with the best validation step's weights, in eval mode."""
        a, mean, std = self.a, self.mean, self.std
        opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.wd)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=a.steps,
                                                    pct_start=0.15, div_factor=20, final_div_factor=200)
        loader = torch.utils.data.DataLoader(
            SceneBatches(a.seed, a.batch, a.steps, self.prep), batch_size=None, shuffle=False,
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
                rep = accuracy_report(self.logits(model, self.val_imgs), self.val_labels)
                self.log("step %d/%d lr %.2e train loss %.4f acc %.4f | val acc %.4f | %.2f s/step"
                         % (step, a.steps, sched.get_last_lr()[0], run_loss / n_seen,
                            run_acc / n_seen, rep["overall"], (time.time() - t_block) / (n_seen / a.batch)))
                run_loss, run_acc, n_seen, t_block = 0.0, 0.0, 0, time.time()
                if rep["overall"] > best[0]:
                    best = (rep["overall"], copy.deepcopy(model.state_dict()), step)
                    torch.save({"state": best[1], "step": step, "mean": self.mean_l, "std": self.std_l},
                               a.checkpoint)
        self.train_s = time.time() - self.t_start
        self.best_step = best[2]
        self.log("best val acc %.4f at step %d" % (best[0], best[2]))
        model.load_state_dict(best[1])
        model.eval()

    def source(self, script):
        a = self.a
        return ("attrib tools/%s (seed %d, %d steps x %d, torch %s); data: "
                "tools/make_scenes.py scenes of Fashion-MNIST (MIT, Zalando Research)"
                % (script, a.seed, a.steps, a.batch, torch.__version__))

    def finish(self, plain, val_plain, fold_err, extra=None):
        """Reports of the exported network (plain) on validation and test, and the metrics file."""
        a = self.a
        del self.val_imgs
        test_imgs, test_labels = fixed_set("test", a.seed, a.test_count, self.prep)
        val_rep = accuracy_report(val_plain, self.val_labels)
        test_rep = accuracy_report(self.logits(plain, test_imgs), test_labels)
        metrics = {"torch": torch.__version__, "numpy": np.__version__, "threads": a.threads,
                   "args": vars(a), "mean": self.mean_l, "std": self.std_l, "best_step": self.best_step}
        metrics.update(extra or {})
        metrics.update({"train_wall_s": round(self.train_s, 1),
                        "total_wall_s": round(time.time() - self.t_start, 1),
                        "fold_max_abs_logit_diff": fold_err, "val": val_rep, "test": test_rep})
        with open(a.metrics, "w") as f:
            json.dump(metrics, f, indent=1)
        self.log("val", json.dumps(val_rep))
        self.log("test", json.dumps(test_rep))
        self.log("wrote", a.out, "and", a.metrics)
