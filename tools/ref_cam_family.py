"""PyTorch references for the rest of the CAM family (docs/methods.md#layercam,
#xgrad-cam, #hirescam, #ablation-cam, #eigencam): the oracle of the goldens in
tests/goldens/methods (make_method_goldens.py) and what tools/check_peers.py
holds against pytorch-grad-cam 1.5.7 and torchcam 0.5.0.

Same calling convention as ref_methods.py (model, normalised input [1,3,H,W],
class or None, layer as a module name, variant, dtype) and the same result
dict (map, cam, weights where the method has channel weights, cls,
predicted, activations). LayerCAM takes several layers as "a,b,c".

Conventions, as read in the peers' installed source (paths relative to .peers/):

pytorch-grad-cam 1.5.7
  layer_cam.py:26-33     cam = sum_k relu(g_k) * A_k (pixel-wise weights).
  xgrad_cam.py:20-31     w_k = sum_ij g * A / (sum_ab A + 1e-7).
  hirescam.py:20-33      cam = sum_k g_k * A_k.
  base_cam.py:160-181    several target layers: each layer's map is ReLU-ed,
                         min-max normalised (+1e-7) and resized to the input
                         (scale_cam_image), then ReLU, mean over the layers and
                         min-max again: the "pgc" fusion below.
  ablation_cam.py:97-160 y = the class logit of the unablated image; for each
                         channel k the WHOLE network runs again on the input
                         with the target layer's output replaced by the
                         ablation layer's (replace_layer_recursive), batches
                         of 32; w_k = (y - y_k) / y in float32.
  ablation_layer.py:80-98 the ablated output: channel k set to 0 when the
                         layer's minimum (over the batch of copies of this
                         image's output) is 0, else to min - 1e7. The minimum
                         is re-read after every item of the batch is written,
                         so item i of a batch gets min - (i + 1) * 1e7 when
                         the minimum is not 0; wherever a ReLU follows (every
                         VGG layer) any value <= 0 is the same, and "pgc"
                         below uses min - 1e7.
  eigen_cam.py:22-29, utils/svd_on_activations.py:6-21  the activations as an
                         (h*w) x K matrix, each channel centred over the
                         pixels, projected on the first right singular vector
                         of np.linalg.svd; the sign is LAPACK's, not chosen;
                         then base_cam's ReLU and scale_cam_image.

torchcam 0.5.0
  methods/gradient.py:391-407  XGradCAM: w_k = sum(g * A) / (sum(A) + 1e-8).
  methods/gradient.py:446-459  LayerCAM: weights relu(g) per pixel; fuse_cams
                         (methods/core.py:316-362): each layer's map (ReLU,
                         min-max +1e-8 at its resolution, core.py:296-303),
                         tanh(2 * map) (_scale_cams, the LayerCAM paper's
                         Eq. 9), bilinear (align_corners=False) to the largest
                         layer's size, element-wise max.
  torchcam has neither HiResCAM nor Ablation-CAM nor EigenCAM.
"""
import torch
import torch.nn.functional as F

import ref_methods as ref

METHODS = ("layercam", "xgradcam", "hirescam", "ablation-cam", "eigencam")
PGC_XGRAD_EPS = 1e-7       # xgrad_cam.py:27
TORCHCAM_XGRAD_EPS = 1e-8  # gradient.py:395
PGC_ABLATION_VALUE = 1e7   # ablation_layer.py:94
LAYERCAM_GAMMA = 2.0       # torchcam gradient.py:457, the LayerCAM paper's Eq. 9
ABLATION_BATCH = 32


def _layers(layer):
    return [s for s in layer.split(",") if s]


def gradient_cam(model, x, cls, layer, method, variant):
    """Single-layer gradient CAMs at the layer's resolution: (cam, weights or None)."""
    a, g, cls, predicted = ref.layer_gradient(model, x, cls, layer)
    weights = None
    if method == "xgradcam":
        eps = TORCHCAM_XGRAD_EPS if variant == "torchcam" else PGC_XGRAD_EPS
        weights = (g * a / (a.sum(dim=(1, 2), keepdim=True) + eps)).sum(dim=(1, 2))
        cam = (weights[:, None, None] * a).sum(0)
    elif method == "hirescam":
        cam = (g * a).sum(0)
    elif method == "layercam":
        cam = (F.relu(g) * a).sum(0)
    else:
        raise ValueError(method)
    return cam, weights, cls, predicted, a


def layer_cam(model, x, cls, layer, variant, dtype):
    """LayerCAM on one layer or fused over several (docs/methods.md#layercam)."""
    x = ref._prepare(model, x, dtype)
    H, W = x.shape[-2:]
    cams, acts = [], []
    for name in _layers(layer):
        cam, _, c, predicted, a = gradient_cam(model, x, cls, name, "layercam", variant)
        cams.append(cam)
        acts.append(a)
        cls = c
    if len(cams) == 1:
        return dict(map=ref.finish_map(cams[0], H, W, "pgc" if variant == "pgc" else
                                       "torchcam" if variant == "torchcam" else "authors"),
                    cam=cams[0], cls=cls, predicted=predicted, activations=acts[0])
    if variant == "pgc":
        # base_cam.py: per layer ReLU, min-max, resize; mean; min-max
        per = [ref.upsample(ref.minmax(F.relu(c), ref.PGC_MAP_EPS), H, W) for c in cams]
        fused = torch.stack([F.relu(p) for p in per]).mean(0)
        return dict(map=ref.minmax(fused, ref.PGC_MAP_EPS), cls=cls, predicted=predicted)
    # torchcam fuse_cams (the default): tanh(2 s(ReLU(cam))), resized to the largest layer, max
    h = max(c.shape[-2] for c in cams)
    w = max(c.shape[-1] for c in cams)
    eps = ref.TORCHCAM_EPS if variant == "torchcam" else None
    scaled = [ref.upsample(torch.tanh(LAYERCAM_GAMMA * ref.minmax(F.relu(c), eps)), h, w) for c in cams]
    fused = torch.stack(scaled).amax(0)
    return dict(map=ref.minmax(ref.upsample(fused, H, W)), fused=fused, cls=cls, predicted=predicted)


def ablation_cam(model, x, cls, layer, variant, dtype, batch=ABLATION_BATCH):
    """Ablation-CAM the way pytorch-grad-cam computes it: the whole network
    from the input, the layer's output replaced by a forward hook."""
    x = ref._prepare(model, x, dtype)
    H, W = x.shape[-2:]
    # tools/resnet_torch.py runs its blocks itself (no module hook fires): there
    # the ablated passes go on from the block output, as the engine's do
    module = None if hasattr(model, "head") else model.get_submodule(layer)
    with torch.no_grad():
        a = ref.trunk(model, x, layer)[0]
        logits = ref.logits_of(model, x)
        cls, predicted = ref._class_of(logits, cls)
        y = logits[0, cls]
        lo = a.min()
        value = 0.0 if variant != "pgc" or lo == 0 else float(lo) - PGC_ABLATION_VALUE
        C = a.shape[0]
        scores = []
        for start in range(0, C, batch):
            ks = list(range(start, min(C, start + batch)))
            patched = a[None].repeat(len(ks), 1, 1, 1)
            for i, k in enumerate(ks):
                patched[i, k] = value
            if module is None:
                out = ref.head(model, patched, layer)
            else:
                hook = module.register_forward_hook(lambda m, i, o, p=patched: p)
                try:
                    out = ref.logits_of(model, x.repeat(len(ks), 1, 1, 1))
                finally:
                    hook.remove()
            scores.append(out[:, cls])
        scores = torch.cat(scores)
        weights = (y - scores) / y if y != 0 else torch.zeros_like(scores)
        cam = (weights[:, None, None] * a).sum(0)
    stage = "pgc" if variant == "pgc" else "authors"
    return dict(map=ref.finish_map(cam, H, W, stage), cam=cam, weights=weights, scores=scores, cls=cls,
                predicted=predicted, activations=a)


def eigen_projection(a, variant):
    """(h,w) projection of the centred (h*w) x K activations on their first
    right singular vector, and that vector. Sign: authors (ours) makes mu . v
    > 0 (mu = the channels' mean activations: the projection of the
    uncentred activations then has a positive sum; the centred one always
    sums to 0); pgc has no rule (LAPACK's sign): here its largest-magnitude
    component is made positive, as the engine does, and check_peers.py
    compares with pytorch-grad-cam up to the sign."""
    C, h, w = a.shape
    X = a.reshape(C, h * w).T
    mu = X.mean(dim=0)
    Xc = X - mu
    _, _, vh = torch.linalg.svd(Xc, full_matrices=False)
    v = vh[0]
    if variant == "pgc":
        flip = v[torch.argmax(v.abs())] < 0
    else:
        flip = (mu @ v) < 0
    if flip:
        v = -v
    return (Xc @ v).reshape(h, w), v


def eigen_cam(model, x, cls, layer, variant, dtype):
    x = ref._prepare(model, x, dtype)
    H, W = x.shape[-2:]
    with torch.no_grad():
        a = ref.trunk(model, x, layer)[0]
        logits = ref.head(model, a[None], layer)
        cls, predicted = ref._class_of(logits, cls)
        cam, v = eigen_projection(a, variant)
    stage = "pgc" if variant == "pgc" else "authors"
    return dict(map=ref.finish_map(cam, H, W, stage), cam=cam, vector=v, cls=cls, predicted=predicted,
                activations=a)


def run(model, x, method, variant="authors", cls=None, layer="features.29", dtype=torch.float64):
    if method == "layercam":
        return layer_cam(model, x, cls, layer, variant, dtype)
    if method in ("xgradcam", "hirescam"):
        x = ref._prepare(model, x, dtype)
        H, W = x.shape[-2:]
        cam, weights, cls, predicted, a = gradient_cam(model, x, cls, layer, method, variant)
        r = dict(map=ref.finish_map(cam, H, W, "torchcam" if variant == "torchcam" else
                                    "pgc" if variant == "pgc" else "authors"),
                 cam=cam, cls=cls, predicted=predicted, activations=a)
        if weights is not None:
            r["weights"] = weights
        return r
    if method == "ablation-cam":
        return ablation_cam(model, x, cls, layer, variant, dtype)
    if method == "eigencam":
        return eigen_cam(model, x, cls, layer, variant, dtype)
    raise ValueError(f"unknown method {method!r}")
