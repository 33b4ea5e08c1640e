"""PyTorch reference implementations of the perturbation methods of docs/methods.md
(#rise, #occlusion, #meaningful-perturbation): the oracle for tests/goldens/perturb
(make_perturb_goldens.py) and what tools/check_perturb_peers.py holds against
TorchRay's rise and captum's Occlusion.

Written from the definitions, not from the engine's code:
  rise_masks   the authors' generator (eclique/RISE explanations.py
               generate_masks: grid = rand(N,s,s) < p, skimage
               resize(order=1, mode='reflect') to (s+1)*ceil(H/s), random shift
               below one cell, crop), with scipy.ndimage.zoom(order=1,
               mode='mirror', grid_mode=True) standing in for skimage's resize
               (what skimage >= 0.19 calls), and the project's SplitMix64
               (tools/prng.py) as the random source: mask i draws
               prng.fill(f"rise.{i}", seed, s*s + 2) as u in [0,1): the cells,
               then the row and column shift.
  rise         S = sum_i p_c(x * M_i) M_i / (N p), softmax scores.
  occlusion    each window written into a copy of the input (baseline = 0 in
               the normalised space, or black = -mean/std), drops averaged over
               the windows covering a pixel.
  meaningful_perturbation  torch autograd + torch.optim.Adam on the mask,
               torchvision's gaussian_blur (reflect padding).
Every map ends as the engine's: ReLU, (upsample,) min-max to [0,1].
"""
import math

import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

import prng

class Classifier(torch.nn.Module):
    """vgg_torch's model (features / avgpool / classifier) as a module whose forward gives the logits."""

    def __init__(self, vgg):
        super().__init__()
        self.vgg = vgg

    def forward(self, x):
        return self.vgg.classifier(torch.flatten(self.vgg.avgpool(self.vgg.features(x)), 1))


MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def rise_masks(h, w, s, p, seed, n):
    cell_h, cell_w = -(-h // s), -(-w // s)
    up_h, up_w = (s + 1) * cell_h, (s + 1) * cell_w
    out = np.empty((n, h, w), np.float64)
    for i in range(n):
        u = prng.fill(f"rise.{i}", seed, (s * s + 2,), 0.5, 0.5)
        grid = (u[:s * s] < np.float32(p)).astype(np.float64).reshape(s, s)
        dy = int(np.floor(np.float64(u[s * s]) * cell_h))
        dx = int(np.floor(np.float64(u[s * s + 1]) * cell_w))
        up = ndi.zoom(grid, (up_h / s, up_w / s), order=1, mode="mirror", grid_mode=True)
        assert up.shape == (up_h, up_w), up.shape
        out[i] = up[dy:dy + h, dx:dx + w]
    return out


def minmax(t):
    lo, hi = t.min(), t.max()
    return torch.zeros_like(t) if not hi > lo else (t - lo) / (hi - lo)


def classify(model, x, cls):
    with torch.no_grad():
        logits = model(x)[0]
    predicted = int(logits.argmax())
    return logits, predicted, predicted if cls is None else cls


def rise(model, x, cls, masks, p, batch=64):
    """masks: tensor [N,H,W] of x's dtype."""
    logits, predicted, c = classify(model, x, cls)
    sal = torch.zeros(x.shape[2:], dtype=x.dtype)
    with torch.no_grad():
        for i in range(0, len(masks), batch):
            mk = masks[i:i + batch]
            prob = F.softmax(model(x * mk[:, None]), dim=1)[:, c]
            sal += (prob[:, None, None] * mk).sum(0)
    sal = sal / (len(masks) * p)
    return {"map": minmax(torch.relu(sal)), "sal": sal, "cls": c, "predicted": predicted}


def occlusion(model, x, cls, window, stride, baseline="mean", score="prob"):
    logits, predicted, c = classify(model, x, cls)
    _, _, H, W = x.shape
    f = (lambda l: F.softmax(l, dim=1)[:, c]) if score == "prob" else (lambda l: l[:, c])
    if baseline == "mean":
        fillv = torch.zeros(3, dtype=x.dtype)
    else:
        fillv = torch.tensor(-MEAN / STD, dtype=x.dtype)
    base = f(logits[None])[0]
    acc = torch.zeros(H, W, dtype=x.dtype)
    cover = torch.zeros(H, W, dtype=x.dtype)
    ny = 1 + math.ceil((H - window) / stride)
    nx = 1 + math.ceil((W - window) / stride)
    with torch.no_grad():
        for wy in range(ny):
            xs = []
            for wx in range(nx):
                xo = x.clone()
                y0, x0 = wy * stride, wx * stride
                xo[0, :, y0:y0 + window, x0:x0 + window] = fillv[:, None, None]
                xs.append(xo)
            drops = base - f(model(torch.cat(xs)))
            for wx in range(nx):
                y0, x0 = wy * stride, wx * stride
                acc[y0:y0 + window, x0:x0 + window] += drops[wx]
                cover[y0:y0 + window, x0:x0 + window] += 1
    att = torch.where(cover > 0, acc / cover.clamp(min=1), torch.zeros_like(acc))
    return {"map": minmax(torch.relu(att)), "att": att, "cls": c, "predicted": predicted}


def tv_norm(m, beta):
    return (m[1:, :] - m[:-1, :]).abs().pow(beta).sum() + (m[:, 1:] - m[:, :-1]).abs().pow(beta).sum()


def meaningful_perturbation(model, x, cls, iterations=300, lr=0.1, l1=1e-4, tv=1e-2, beta=3.0, mask_size=28,
                            sigma=None, score="prob"):
    logits, predicted, c = classify(model, x, cls)
    _, _, H, W = x.shape
    sy = sigma if sigma else 10.0 * H / 224
    sx = sigma if sigma else 10.0 * W / 224
    ky = 2 * min(math.ceil(3 * sy), H - 1) + 1
    kx = 2 * min(math.ceil(3 * sx), W - 1) + 1
    blurred = TF.gaussian_blur(x, [kx, ky], [sx, sy])
    mask = torch.ones(mask_size, mask_size, dtype=x.dtype, requires_grad=True)
    opt = torch.optim.Adam([mask], lr=lr)
    losses = []
    for _ in range(iterations):
        up = F.interpolate(mask[None, None], size=(H, W), mode="bilinear", align_corners=False)
        phi = up * x + (1 - up) * blurred
        out = model(phi)
        prob = F.softmax(out, dim=1)[0, c] if score == "prob" else out[0, c]
        loss = l1 * (1 - mask).abs().sum() + tv * tv_norm(mask, beta) + prob
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            mask.clamp_(0, 1)
        losses.append(float(loss))
    m1 = (1 - mask).detach()
    up = F.interpolate(m1[None, None], size=(H, W), mode="bilinear", align_corners=False)[0, 0]
    return {"map": minmax(torch.relu(up)), "mask": mask.detach(), "cls": c, "predicted": predicted,
            "losses": np.array(losses)}
