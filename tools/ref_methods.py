"""PyTorch reference implementations of the attribution methods of docs/methods.md (Score-CAM, Grad-CAM, saliency)
(Score-CAM in three variants, Grad-CAM, Grad-CAM++, vanilla and contrastive
gradient saliency; the CAM family of ref_cam_family.py): the oracle for tests/goldens/methods (make_method_goldens.py)
and the thing tools/check_peers.py holds against the real peer libraries.

Every function takes a model from vgg_torch.build_vgg (or any module with
torchvision's features / avgpool / classifier) or resnet_torch.build_resnet,
a normalised input [1,3,H,W], the class (None = argmax), a layer given as a
torchvision module name ("features.29"; on ResNet a block output such as
"layer4" or "layer3.1"), a variant and a dtype. The model is converted to that dtype in
place (nn.Module.to). Results are a dict of tensors:
  map        [H,W] final map in [0,1] (all zero when the map is flat)
  cam        [h,w] weighted channel sum at the layer's resolution, before ReLU
  weights    [C]   what multiplies each channel in cam (CAM methods)
  scores     [C]   Score-CAM's raw per-channel scores, before any softmax
  flat       [C]   bool, channels whose activation map is constant
  cls, predicted   ints

Conventions, as read in the peers' installed source (grad-cam 1.5.7 =
pytorch-grad-cam, torchcam 0.5.0; paths relative to .peers/) and in the
Score-CAM authors' code (github.com/haofanwang/Score-CAM, cam/scorecam.py at
commit 80326cbb):

authors' Score-CAM (cam/scorecam.py)
  :36-45   class = argmax of the unmasked logits unless given; scores are
           softmax probabilities (F.softmax without dim = dim 1).
  :67-68   mask source = F.interpolate(A_l, (h, w), bilinear, align_corners=False).
  :70-71   flat channel (max == min of the UPSAMPLED map): skipped (weight 0,
           no forward).
  :74      min-max AFTER upsampling, no epsilon.
  :78-80   score = p^c(f(input * mask)); input is the normalised tensor.
  :82      the map accumulates score * Up(A_l), i.e. Up(sum_l score_l A_l): the
           weighted sum is upsampled BEFORE the ReLU (:84). With probabilities
           >= 0 and A >= 0 (ReLU or pool layers) the ReLU is a no-op and the
           order does not matter; on a pre-ReLU conv output it does, and we
           follow the authors (Up, then ReLU) in this variant.
  :84-90   ReLU, then min-max with no epsilon; a flat map returns None (ours:
           all-zero map).
  The code calls .cuda() unconditionally (:36), so it does not run on a CPU-only
  torch as published.

pytorch-grad-cam 1.5.7
  score_cam.py:24-29     masks: torch.nn.UpsamplingBilinear2d = bilinear with
                         align_corners=TRUE.
  score_cam.py:31-37     min-max per channel AFTER upsampling,
                         (U - min) / (max - min + 1e-8): a flat channel gives an
                         all-zero mask (no NaN; the "NaN risk" of docs/methods.md#conventions-where-papers-and-peers-disagree does not
                         apply to 1.5.7), scored like any other channel.
  score_cam.py:39-40     masked input = input_tensor (normalised) * mask.
  score_cam.py:51-52     score = target(output) = ClassifierOutputTarget = the raw
                         logit (utils/model_targets.py:6-13), forwards in batches
                         of 16.
  score_cam.py:54-56     scores go through torch.Tensor(...) = float32 whatever
                         the model's dtype, then softmax over channels = weights.
  grad_cam.py:23-24      Grad-CAM weights = mean of dy/dA over the spatial axes.
  grad_cam_plusplus.py:19-34  Grad-CAM++: a = g^2 / (2 g^2 + sum_ab(A) * g^3
                         + 1e-6), a = 0 where g == 0, w = sum_ij relu(g) a (the
                         channel sum of A times the PIXEL's g^3, as docs/methods.md#grad-cam-and-grad-cam).
  base_cam.py:105-115    y = logit of the class (ClassifierOutputTarget); class
                         = argmax when targets is None (:107-109).
  activations_and_gradients.py:14-44  activation = the target module's output,
                         gradient = d y / d(that output), via a tensor hook.
  base_cam.py:76-91      cam = sum_l w_l A_l at the layer's resolution.
  base_cam.py:171-172    ReLU, then scale_cam_image:
  utils/image.py:161-171 min-max BEFORE resizing, (M - min) / (max + 1e-7)
                         after subtracting min, then cv2.resize(float32 map,
                         (W, H)) with the default INTER_LINEAR (half-pixel
                         centres = align_corners=False for upscaling).
  base_cam.py:177-181    aggregate_multi_layers: ReLU, mean over layers, and
                         scale_cam_image again (min-max + 1e-7, no resize).
  So pgc's final map differs from ours (ReLU -> Up -> min-max) by the two 1e-7
  epsilons only: bilinear upsampling is affine-equivariant, so min-max before
  and after it give the same map up to a factor range/(range + 1e-7).

torchcam 0.5.0
  methods/activation.py:279      Score-CAM masks: activations min-max normalised
                                 per channel at the layer's resolution, BEFORE
                                 upsampling, by _normalize (core.py:191-201):
                                 (A - min) / (max - min + 1e-8); flat -> 0 mask.
  methods/activation.py:192-199  masks upsampled by F.interpolate bilinear,
                                 align_corners=False, times the stored model
                                 input (the normalised tensor, :169-172, :194).
  methods/activation.py:223-227, 259  score = logit(masked) - logit(unmasked
                                 input) (the "baseline" is the input itself).
  methods/activation.py:262-265  weights = softmax of the scores over channels.
  methods/activation.py:166      ReLU on the CAM before normalisation.
  core.py:290-303                cam = nansum_l w_l A_l (raw A, not the masks),
                                 ReLU, then _normalize: min-max with +1e-8 at
                                 the layer's resolution. torchcam returns this
                                 low-resolution map; it never upsamples to the
                                 input (overlay is left to the user), so our
                                 torchcam variant ends with our stage: bilinear
                                 align_corners=False (its own mask convention),
                                 then exact min-max.
  methods/gradient.py:72-82      y = logit of class_idx; gradient wrt the
                                 hooked module's output by autograd.grad.
  methods/gradient.py:128-129    Grad-CAM weights = mean of the gradient.
  methods/gradient.py:192-206    Grad-CAM++: denominator 2 g^2 + sum_ab(A g^3)
                                 (per channel, as docs/methods.md#grad-cam-and-grad-cam says), eps 1e-8,
                                 only where g^2 > 0. BUT :203
                                 `alpha[idx][mask].div_(d[mask] + eps)` divides
                                 a copy (boolean indexing copies), so alpha
                                 stays g^2 and torchcam actually returns
                                 w = sum_ij relu(g) g^2. Variant "torchcam"
                                 below is the formula torchcam documents and
                                 docs/methods.md#grad-cam-and-grad-cam describes; "torchcam-asrun" is what
                                 torchcam 0.5.0 computes (check_peers.py checks
                                 both).
  methods/gradient.py:39-40      Grad-CAM(++) ReLU before normalisation.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

VARIANTS = ("authors", "pgc", "torchcam")
PGC_MASK_EPS = 1e-8       # score_cam.py:37
PGC_MAP_EPS = 1e-7        # utils/image.py:165
PGC_GRADCAMPP_EPS = 1e-6  # grad_cam_plusplus.py:26, docs/methods.md#grad-cam-and-grad-cam
TORCHCAM_EPS = 1e-8       # core.py:193 (_normalize), gradient.py:183 (Grad-CAM++)
SCORE_BATCH = 32


class TorchvisionVGG(nn.Module):
    """The peers call model(x) and find layers by module name; vgg_torch's model
    is a bare container, so this gives it torchvision's forward."""

    def __init__(self, m):
        super().__init__()
        self.features, self.avgpool, self.classifier = m.features, m.avgpool, m.classifier

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def layer_index(layer):
    """'features.N' -> N (the methods take a module output of the features block)."""
    prefix = "features."
    if not layer.startswith(prefix) or not layer[len(prefix):].isdigit():
        raise ValueError(f"layer {layer!r} is not a features.N module name")
    return int(layer[len(prefix):])


def trunk(model, x, layer):
    """Output of module `layer` (input through features.0 .. features.N)."""
    if hasattr(model, "trunk"):
        return model.trunk(x, layer)
    n = layer_index(layer)
    if n >= len(model.features):
        raise ValueError(f"layer {layer} does not exist (features has {len(model.features)} modules)")
    return model.features[:n + 1](x)


def head(model, a, layer):
    """Logits from the output of module `layer`."""
    if hasattr(model, "head"):
        return model.head(a, layer)
    a = model.features[layer_index(layer) + 1:](a)
    return model.classifier(torch.flatten(model.avgpool(a), 1))


def logits_of(model, x):
    if not hasattr(model, "classifier"):
        return model(x)
    return model.classifier(torch.flatten(model.avgpool(model.features(x)), 1))


def upsample(m, h, w, align_corners=False):
    """Bilinear resize of [..., h', w'] maps to (h, w)."""
    shape = m.shape
    out = F.interpolate(m.reshape(-1, 1, *shape[-2:]), size=(h, w), mode="bilinear", align_corners=align_corners)
    return out.reshape(*shape[:-2], h, w)


def minmax(m, eps=None):
    """Min-max over the last two axes. eps None: s(M) of docs/methods.md#notation-and-common-steps, exact, 0 where
    max == min; eps > 0: the peers' (M - min) / (max - min + eps)."""
    lo = m.amin(dim=(-2, -1), keepdim=True)
    hi = m.amax(dim=(-2, -1), keepdim=True)
    if eps is not None:
        return (m - lo) / (hi - lo + eps)
    rng = hi - lo
    return torch.where(rng > 0, (m - lo) / torch.where(rng > 0, rng, torch.ones_like(rng)), torch.zeros_like(m))


def finish_map(cam, h, w, variant, relu_after_upsampling=False):
    """Final map [h,w] in [0,1] from the weighted sum at the layer's resolution.

    authors / ours: ReLU -> bilinear (align_corners=False) -> exact min-max
      (relu_after_upsampling: the Score-CAM authors' order, Up -> ReLU).
    pgc: ReLU -> min-max(+1e-7) -> cv2.resize INTER_LINEAR (= bilinear,
      align_corners=False, for upscaling) -> ReLU -> min-max(+1e-7).
    torchcam: ReLU -> min-max(+1e-8) (torchcam's output) -> bilinear
      (align_corners=False) -> exact min-max.
    """
    if variant == "authors":
        if relu_after_upsampling:
            return minmax(F.relu(upsample(cam, h, w)))
        return minmax(upsample(F.relu(cam), h, w))
    if variant == "pgc":
        low = minmax(F.relu(cam), PGC_MAP_EPS)
        return minmax(F.relu(upsample(low, h, w)), PGC_MAP_EPS)
    if variant == "torchcam":
        return minmax(upsample(torchcam_output(cam), h, w))
    raise ValueError(f"unknown variant {variant!r}")


def torchcam_output(cam):
    """What torchcam's extractor returns for a weighted sum: ReLU, min-max +1e-8,
    at the layer's resolution (core.py:296-303)."""
    return minmax(F.relu(cam), TORCHCAM_EPS)


def _prepare(model, x, dtype):
    model.to(dtype).eval()
    return x.to(dtype)


def _class_of(logits, cls):
    predicted = int(torch.argmax(logits[0]))
    return (predicted if cls is None else int(cls)), predicted


def score_cam(model, x, cls=None, layer="features.29", variant="authors", dtype=torch.float64, batch=SCORE_BATCH):
    """Score-CAM (docs/methods.md#score-cam) as each tool computes it; see the module docstring."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown Score-CAM variant {variant!r}")
    x = _prepare(model, x, dtype)
    H, W = x.shape[-2:]
    with torch.no_grad():
        a = trunk(model, x, layer)[0]                       # [C,h,w]
        logits = head(model, a[None], layer)
        cls, predicted = _class_of(logits, cls)
        flat = a.amax(dim=(1, 2)) == a.amin(dim=(1, 2))
        if variant == "authors":
            masks = minmax(upsample(a, H, W, align_corners=False))
        elif variant == "pgc":
            masks = minmax(upsample(a, H, W, align_corners=True), PGC_MASK_EPS)
        else:
            masks = upsample(minmax(a, TORCHCAM_EPS), H, W, align_corners=False)
        # A flat channel's mask is all zero in every variant: the authors skip it
        # (weight 0), the peers score X * 0 like any channel. scores[] holds
        # f(X * 0) for it in all variants (docs/methods.md#score-cdrp: the Score-CDRP vector).
        masked_logits = torch.cat([logits_of(model, x * masks[i:i + batch, None])
                                   for i in range(0, masks.shape[0], batch)])
        if variant == "authors":
            scores = torch.softmax(masked_logits, dim=1)[:, cls]
            weights = torch.where(flat, torch.zeros_like(scores), scores)
        elif variant == "pgc":
            scores = masked_logits[:, cls]
            weights = torch.softmax(scores, dim=0)
        else:
            scores = masked_logits[:, cls] - logits[0, cls]
            weights = torch.softmax(scores, dim=0)
        cam = (weights[:, None, None] * a).sum(0)
        m = finish_map(cam, H, W, variant, relu_after_upsampling=True)
    return dict(map=m, cam=cam, weights=weights, scores=scores, flat=flat, cls=cls, predicted=predicted,
                activations=a)


def layer_gradient(model, x, cls, layer):
    """A = output of `layer`, g = d y_c / d A (y_c the pre-softmax logit)."""
    with torch.no_grad():
        a = trunk(model, x, layer)
    a = a.clone().requires_grad_(True)
    logits = head(model, a, layer)
    cls, predicted = _class_of(logits.detach(), cls)
    (g,) = torch.autograd.grad(logits[0, cls], a)
    return a.detach()[0], g[0], cls, predicted


def gradcampp_weights(a, g, variant):
    """Chattopadhay et al. Eq. 19 (docs/methods.md#grad-cam-and-grad-cam) for A, g of shape [C,h,w]."""
    g2 = g * g
    g3 = g2 * g
    if variant in ("authors", "pgc"):
        sum_a = a.sum(dim=(1, 2), keepdim=True)
        alpha = g2 / (2 * g2 + sum_a * g3 + PGC_GRADCAMPP_EPS)
        alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
    elif variant == "torchcam":
        sum_ag3 = (a * g3).sum(dim=(1, 2), keepdim=True)
        alpha = torch.where(g2 > 0, g2 / (2 * g2 + sum_ag3 + TORCHCAM_EPS), torch.zeros_like(g2))
    elif variant == "torchcam-asrun":
        alpha = g2  # torchcam 0.5.0 gradient.py:203 divides a copy: alpha stays g^2
    else:
        raise ValueError(f"unknown Grad-CAM++ variant {variant!r}")
    return (F.relu(g) * alpha).sum(dim=(1, 2))


def grad_cam(model, x, cls=None, layer="features.29", variant="authors", dtype=torch.float64, plusplus=False):
    """Grad-CAM (w = spatial mean of g) or, with plusplus, Grad-CAM++. The
    weights are the same in every variant for Grad-CAM; the variant picks the
    final stage (finish_map) and, for Grad-CAM++, the alpha formula."""
    x = _prepare(model, x, dtype)
    H, W = x.shape[-2:]
    a, g, cls, predicted = layer_gradient(model, x, cls, layer)
    weights = gradcampp_weights(a, g, variant) if plusplus else g.mean(dim=(1, 2))
    cam = (weights[:, None, None] * a).sum(0)
    stage = "torchcam" if variant == "torchcam-asrun" else variant
    return dict(map=finish_map(cam, H, W, stage), cam=cam, weights=weights, cls=cls, predicted=predicted,
                activations=a, gradients=g)


def grad_cam_pp(model, x, cls=None, layer="features.29", variant="authors", dtype=torch.float64):
    return grad_cam(model, x, cls, layer, variant, dtype, plusplus=True)


def input_gradient(model, x, cls):
    x = x.clone().requires_grad_(True)
    logits = logits_of(model, x)
    cls, predicted = _class_of(logits.detach(), cls)
    (g,) = torch.autograd.grad(logits[0, cls], x)
    return g[0], cls, predicted


def saliency(model, x, cls=None, dtype=torch.float64):
    """Vanilla gradient (docs/methods.md#gradient-saliency): max over colour channels of |dy_c/dx|, min-max."""
    x = _prepare(model, x, dtype)
    g, cls, predicted = input_gradient(model, x, cls)
    return dict(map=minmax(g.abs().amax(dim=0)), cls=cls, predicted=predicted, gradients=g)


def contrastive(model, x, cls=None, dtype=torch.float64):
    """Contrastive gradient (docs/methods.md#gradient-saliency): ReLU(dy_c/dx), L2 over colour
    channels, min-max."""
    x = _prepare(model, x, dtype)
    g, cls, predicted = input_gradient(model, x, cls)
    return dict(map=minmax(F.relu(g).pow(2).sum(dim=0).sqrt()), cls=cls, predicted=predicted, gradients=g)


class _RuleReLU(torch.autograd.Function):
    """ReLU whose backward passes max(dy, 0) where the input was positive
    (guided backprop) or everywhere (deconvnet), docs/methods.md#guided-backprop-and-deconvnet."""

    @staticmethod
    def forward(ctx, x, deconvnet):
        ctx.save_for_backward(x)
        ctx.deconvnet = deconvnet
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        g = g.clamp(min=0)
        return (g if ctx.deconvnet else g * (x > 0).to(g.dtype)), None


def rule_backprop(model, x, cls=None, dtype=torch.float64, deconvnet=False):
    """Guided backprop / deconvnet: max over colour channels of |g| under the
    rule, min-max; models whose ReLUs go through model.relu_fn (ResNet)."""
    if not hasattr(model, "relu_fn"):
        raise ValueError("rule_backprop needs a model with relu_fn (tools/resnet_torch.py)")
    x = _prepare(model, x, dtype)
    model.relu_fn = lambda t: _RuleReLU.apply(t, deconvnet)
    try:
        g, cls, predicted = input_gradient(model, x, cls)
    finally:
        del model.relu_fn
    return dict(map=minmax(g.abs().amax(dim=0)), cls=cls, predicted=predicted, gradients=g)


METHODS = ("scorecam", "gradcam", "gradcam++", "saliency", "contrastive")


def run_method(model, x, method, variant="authors", cls=None, layer="features.29", dtype=torch.float64):
    """Dispatch by the CLI's method names (scorecam|gradcam|gradcam++|saliency|contrastive)."""
    if method == "scorecam":
        return score_cam(model, x, cls, layer, variant, dtype)
    if method == "gradcam":
        return grad_cam(model, x, cls, layer, variant, dtype)
    if method == "gradcam++":
        return grad_cam_pp(model, x, cls, layer, variant, dtype)
    if method == "saliency":
        return saliency(model, x, cls, dtype)
    if method == "contrastive":
        return contrastive(model, x, cls, dtype)
    if method in ("guided-backprop", "deconvnet"):
        return rule_backprop(model, x, cls, dtype, deconvnet=method == "deconvnet")
    import ref_cam_family
    if method in ref_cam_family.METHODS:
        return ref_cam_family.run(model, x, method, variant, cls, layer, dtype)
    raise ValueError(f"unknown method {method!r}")
