"""PyTorch reference of the input-gradient methods of docs/methods.md (input x
gradient, integrated gradients, SmoothGrad and --smooth, guided backprop,
deconvnet, guided Grad-CAM, and explaining a --unit): the oracle for
tests/goldens/methods (make_method_goldens.py), written from the definitions,
not from captum; tools/check_grad_peers.py holds it and the engine against
captum 0.7.0.

Every function takes a model with torchvision's features / avgpool /
classifier (vgg_torch.build_vgg) or a ResNet (resnet_torch.build_resnet;
units there are not supported), a normalised input [1,C,H,W], the class
(None = argmax) and a dtype (the model is converted in place). Results are
dicts like ref_methods': map [H,W] in [0,1], attribution [C,H,W] (E before the
colour reduction), cls, predicted, value (the explained quantity on x) and,
for integrated gradients, baseline_value and attribution_sum.

A unit is (layer, channel, x, y) with layer a module name (features.N,
avgpool, classifier.N) and x = y = None for the channel's sum; the explained
quantity is then that element (or sum) of the layer's output.
"""
import copy

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import prng
from ref_methods import _class_of, layer_gradient, logits_of, minmax, upsample

IG_RULES = ("gauss-legendre", "riemann-left", "riemann-right", "riemann-middle", "riemann-trapezoid")
IG_STEPS = 50
SG_SAMPLES = 25
SG_SIGMA = 0.15
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return z.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        return g.clamp(min=0) * (z > 0).to(g.dtype)


class _DeconvReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):
        return z.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        return g.clamp(min=0)


class _RuleReLU(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, z):
        return self.fn.apply(z)


def with_relu_rule(model, rule):
    """A copy of the model whose every ReLU backpropagates under rule
    (gradient | guided | deconvnet)."""
    if rule == "gradient":
        return model
    fn = {"guided": _GuidedReLU, "deconvnet": _DeconvReLU}[rule]
    m = copy.deepcopy(model)
    if hasattr(m, "relu_fn"):  # a ResNet: every ReLU goes through relu_fn
        m.relu_fn = fn.apply
        return m
    for seq in (m.features, m.classifier):
        for i, mod in enumerate(seq):
            if isinstance(mod, nn.ReLU):
                seq[i] = _RuleReLU(fn)
    return m


def layer_output(model, x, name):
    """Output of module `name` (features.N, avgpool, classifier.N) and the logits."""
    if not hasattr(model, "features"):  # a ResNet: the logits only
        if name is not None:
            raise ValueError("units on a ResNet are not in this reference")
        return None, model(x)
    out = {}
    a = x
    for i, mod in enumerate(model.features):
        a = mod(a)
        out[f"features.{i}"] = a
    a = model.avgpool(a)
    out["avgpool"] = a
    a = torch.flatten(a, 1)
    for i, mod in enumerate(model.classifier):
        a = mod(a)
        out[f"classifier.{i}"] = a
    if name is not None and name not in out:
        raise ValueError(f"no module {name!r}")
    return (out[name] if name else None), a


def explained(model, x, cls, unit):
    """[n] explained quantity of each item (the class logit, or the unit), the
    logits, and the class per item."""
    a, logits = layer_output(model, x, unit[0] if unit else None)
    if cls is None:
        cls = int(torch.argmax(logits[0]))
    if unit is None:
        return logits[:, cls], logits, cls
    layer, c, ux, uy = unit
    ch = a[:, c]
    if ch.dim() == 1:  # a linear layer's output
        return ch, logits, cls
    return (ch.sum(dim=(1, 2)) if ux is None else ch[:, uy, ux]), logits, cls


def input_gradients(model, xs, cls, unit=None, rule="gradient"):
    """d(explained)/dx for a batch xs [k,C,H,W] (one class for all), the
    explained values [k] and the logits."""
    xs = xs.detach().clone().requires_grad_(True)
    y, logits, cls = explained(with_relu_rule(model, rule), xs, cls, unit)
    (g,) = torch.autograd.grad(y.sum(), xs)
    return g, y.detach(), logits.detach(), cls


def guided_cam_upsampled(model, xs, cls, layer):
    """Up(ReLU(sum_l mean(g_l) A_l)) per item, [k,H,W] (Grad-CAM with the plain gradient)."""
    H, W = xs.shape[-2:]
    ups = []
    for k in range(xs.shape[0]):
        a, g, _, _ = layer_gradient(model, xs[k:k + 1], cls, layer)
        cam = F.relu((g.mean(dim=(1, 2))[:, None, None] * a).sum(0))
        ups.append(upsample(cam, H, W))
    return torch.stack(ups)


def element_attribution(model, method, xs, cls, unit, layer):
    """E [k,C,H,W] of the method at each input of xs (docs/methods.md tables)."""
    if method in ("saliency", "smoothgrad"):
        return input_gradients(model, xs, cls, unit)[0].abs()
    if method == "contrastive":
        return F.relu(input_gradients(model, xs, cls, unit)[0])
    if method == "guided-backprop":
        return input_gradients(model, xs, cls, unit, "guided")[0]
    if method == "deconvnet":
        return input_gradients(model, xs, cls, unit, "deconvnet")[0]
    if method == "input-x-gradient":
        return xs * input_gradients(model, xs, cls, unit)[0]
    if method == "guided-gradcam":
        return input_gradients(model, xs, cls, None, "guided")[0] * guided_cam_upsampled(model, xs, cls, layer)[:, None]
    raise ValueError(f"unknown method {method!r}")


def reduce_map(method, e):
    """[C,H,W] -> the map in [0,1]."""
    if method == "contrastive":
        m = e.pow(2).sum(0).sqrt()
    elif method in ("input-x-gradient", "integrated-gradients"):
        m = F.relu(e.sum(0))
    else:
        m = e.abs().amax(0)
    return minmax(m)


def ig_nodes(rule, n):
    """Nodes alpha and weights w of captum 0.7.0's rules (approximation_methods.py):
    numpy's Gauss-Legendre scaled to [0,1]; Riemann nodes from torch.linspace in
    float32, steps 1/n, the trapezoid's two end steps halved (sum (n-1)/n)."""
    if rule == "gauss-legendre":
        x, w = np.polynomial.legendre.leggauss(n)
        return list(0.5 * (1 + x)), list(0.5 * w)
    kind = rule.split("-")[1]
    lims = {"left": (0, 1 - 1 / n), "right": (1 / n, 1), "middle": (1 / (2 * n), 1 - 1 / (2 * n)),
            "trapezoid": (0, 1)}[kind]
    alphas = torch.linspace(lims[0], lims[1], n, dtype=torch.float32).tolist()
    w = [1 / n] * n
    if kind == "trapezoid":
        w[0] /= 2
        w[-1] /= 2
    return alphas, w


def baseline_of(x, baseline, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """black: 0 in [0,1] space, normalised; zero: 0 in normalised space."""
    if baseline == "zero":
        return torch.zeros_like(x)
    v = torch.tensor([(0 - m) / s for m, s in zip(mean, std)], dtype=x.dtype)
    return v[None, :, None, None].expand_as(x).clone()


def ig_attribution(model, x, cls, unit, steps, rule, xb):
    """(x - x') * sum_k w_k g(x' + alpha_k (x - x')), [C,H,W]."""
    alphas, w = ig_nodes(rule, steps)
    xs = torch.cat([xb + a * (x - xb) for a in alphas])
    g = input_gradients(model, xs, cls, unit)[0]
    wt = torch.tensor(w, dtype=x.dtype)[:, None, None, None]
    return ((x - xb) * (wt * g).sum(0, keepdim=True))[0]


def _prepare(model, x, dtype):
    model.to(dtype).eval()
    return x.to(dtype)


def noise(shape, samples, seed):
    """The shared SmoothGrad noise: sample j = standard normal deviates j*CHW.. of
    the "smoothgrad" stream (prng.normal, the twin of at_prng_normal)."""
    return torch.from_numpy(prng.normal("smoothgrad", seed, (samples,) + tuple(shape[1:])))


def run(model, x, method, cls=None, layer="features.29", dtype=torch.float64, unit=None, ig_steps=IG_STEPS,
        ig_rule="gauss-legendre", baseline="black", smooth=0, sg_sigma=SG_SIGMA, sg_square=False, sg_seed=0,
        mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """The method's map as the engine defines it; smooth > 0 (smoothgrad:
    SG_SAMPLES when 0) averages E (or E^2) over x + sd * z_j, sd = sg_sigma *
    (max x - min x). mean, std: the model's, for the black baseline."""
    x = _prepare(model, x, dtype)
    y, logits, c = explained(model, x, cls, unit)
    cls, predicted = _class_of(logits.detach(), c)
    res = dict(cls=cls, predicted=predicted, value=float(y[0]))
    samples = smooth or (SG_SAMPLES if method == "smoothgrad" else 0)
    xb = baseline_of(x, baseline, mean, std) if method == "integrated-gradients" else None
    if xb is not None:
        res["baseline_value"] = float(explained(model, xb, cls, unit)[0][0])

    def attribution(xi):
        if method == "integrated-gradients":
            return ig_attribution(model, xi, cls, unit, ig_steps, ig_rule, xb)
        return element_attribution(model, method, xi, cls, unit, layer)[0]

    if samples:
        z = noise(x.shape, samples, sg_seed).to(dtype)
        sd = sg_sigma * float(x.max() - x.min())
        acc = torch.zeros_like(x[0])
        for j in range(samples):
            e = attribution(x + sd * z[j:j + 1])
            acc += (e * e if sg_square else e) / samples
        e = acc
    else:
        e = attribution(x)
        if method == "integrated-gradients":
            res["attribution_sum"] = float(e.sum())
    res["attribution"] = e.detach()
    res["map"] = reduce_map(method, e.detach())
    return res
