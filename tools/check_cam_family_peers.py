"""The CAM family's part of tools/check_peers.py: tools/ref_cam_family.py
against pytorch-grad-cam 1.5.7 (LayerCAM with one and several layers,
XGradCAM, HiResCAM, AblationCAM, EigenCAM) and torchcam 0.5.0 (LayerCAM and
its fuse_cams, XGradCAM), float64 models. check_peers.py calls rows()."""
import contextlib
import io

import numpy as np
import torch

import ref_cam_family as fam
import ref_methods as ref

# Tolerances on max |peer - ref| (maps in [0,1]; weights relative to their
# largest magnitude):
PGC_TOL = 2e-6        # pgc rounds every map to float32 for cv2.resize (utils/image.py:171).
PGC_ABLATION_TOL = 1e-6  # and Ablation-CAM's scores to float32 (ablation_cam.py:110, 146):
                         # y - y_k loses ~6e-8 |y| to that rounding; w_k = (y - y_k) / y
                         # moves by 6e-8 relative to y per weight (measured: <= 3e-7).
PGC_EIGEN_TOL = 2e-6  # float32 rounding of the projection (svd_on_activations.py:21),
                      # compared up to the sign, which LAPACK chooses.
TORCHCAM_TOL = 1e-9   # float64 throughout, same operations (the 1e-8 epsilons included).

# (model name, layer, class or None) probes on check_peers' MODELS: the last
# conv's ReLU, a pool, a pre-ReLU conv output (Ablation-CAM's pgc value
# min - 1e7), a non-predicted class, and fused layers for LayerCAM.
PROBES = {
    "vgg11_small": [("features.19", None), ("features.15", None), ("features.18", None), ("features.14", 3),
                    ("features.9,features.14,features.19", None)],
    "vgg16_mini": [("features.29", None), ("features.30", None), ("features.28", None), ("features.22,features.29", None),
                   ("features.15,features.22,features.29", 4)],
}


def _quiet(fn):
    with contextlib.redirect_stderr(io.StringIO()):  # tqdm progress bars
        return fn()


def run_pgc(method, model, x, layers, cls):
    from pytorch_grad_cam import AblationCAM, EigenCAM, HiResCAM, LayerCAM, XGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    cam_cls = {"layercam": LayerCAM, "xgradcam": XGradCAM, "hirescam": HiResCAM, "ablation-cam": AblationCAM,
               "eigencam": EigenCAM}[method]
    weights = {}

    class Recorded(cam_cls):
        def get_cam_weights(self, *args, **kwargs):
            weights["w"] = super().get_cam_weights(*args, **kwargs)
            return weights["w"]

    cam = Recorded(model=model, target_layers=[model.get_submodule(n) for n in layers])
    m = _quiet(lambda: cam(input_tensor=x, targets=[ClassifierOutputTarget(cls)]))
    cam.activations_and_grads.release()
    return m[0], (np.asarray(weights["w"])[0] if "w" in weights else None)


def run_torchcam(method, model, x, layers, cls):
    from torchcam.methods import LayerCAM, XGradCAM
    cam_cls = {"layercam": LayerCAM, "xgradcam": XGradCAM}[method]
    extractor = cam_cls(model, layers if len(layers) > 1 else layers[0], input_shape=tuple(x.shape[1:]))
    cams = extractor(class_idx=cls, scores=model(x))
    fused = extractor.fuse_cams(cams) if len(cams) > 1 else cams[0]
    extractor.remove_hooks()
    return fused[0].detach().numpy()


def rows(models, build, maxdiff, reldiff, add):
    for name, arch, widths, hidden, nc, h, w, avgpool, _ in models:
        model, x = build(arch, widths, hidden, nc, h, w, avgpool)
        for layer, cls in PROBES.get(name, []):
            layers = layer.split(",")
            with torch.no_grad():
                predicted = int(model(x).argmax())
            c = predicted if cls is None else cls
            case = f"{name}/{layer}/c{c}" + ("" if cls is None else "(not predicted)" if c != predicted else "")
            multi = len(layers) > 1
            methods = ["layercam"] if multi else list(fam.METHODS)
            for method in methods:
                r = fam.run(model, x, method, "pgc", c, layer, torch.float64)
                p_map, p_w = run_pgc(method, model, x, layers, c)
                if method == "eigencam":
                    flipped = ref.finish_map(-r["cam"], h, w, "pgc")
                    d, d_flip = maxdiff(p_map, r["map"]), maxdiff(p_map, flipped)
                    add(method, "pgc", "pytorch-grad-cam", case,
                        "map up to sign (" + ("same" if d <= d_flip else "opposite") + ")", min(d, d_flip),
                        PGC_EIGEN_TOL)
                    continue
                tol = PGC_ABLATION_TOL if method == "ablation-cam" else PGC_TOL
                add(method, "pgc", "pytorch-grad-cam", case, "map", maxdiff(p_map, r["map"]), tol)
                if p_w is not None and "weights" in r:
                    add(method, "pgc", "pytorch-grad-cam", case, "weights(rel)", reldiff(p_w, r["weights"]), tol)
                if method in ("layercam", "xgradcam"):
                    t = run_torchcam(method, model, x, layers, c)
                    r = fam.run(model, x, method, "torchcam", c, layer, torch.float64)
                    ours = r["fused"] if multi else ref.torchcam_output(r["cam"])
                    add(method, "torchcam", "torchcam", case, "cam (layer res.)", maxdiff(t, ours), TORCHCAM_TOL)
