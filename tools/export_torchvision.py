#!/usr/bin/python3
"""Convert a torchvision VGG11/13/16/19 (or _bn) or ResNet-18/34/50/101/152
ImageNet checkpoint to the safetensors file the attrib engine reads (see docs/models.md).

  tools/export_torchvision.py --pth vgg16-397923af.pth \
      --labels LOC_synset_mapping.txt --out vgg16.safetensors
  tools/export_torchvision.py --arch vgg16 --out vgg16.safetensors   # downloads
  tools/export_torchvision.py --arch vgg16 --random-init 0 --out vgg16_random.safetensors
  tools/export_torchvision.py --self-test

Input: --pth FILE, a torchvision state dict (what
torchvision.models.vgg16(weights="DEFAULT") downloads to
~/.cache/torch/hub/checkpoints/vgg16-397923af.pth; a saved full model or a
{"state_dict": ...} dict also works), or --arch NAME alone, which asks
torchvision for the DEFAULT weights (needs the internet or that cache), or
--arch NAME --random-init SEED: torchvision's own random initialisation
(torch.manual_seed(SEED)), no download; ImageNet-shaped but meaningless
classes, for timing and testing.

The architecture is read from the keys (13 convs = vgg16, BN stats = _bn;
a ResNet from its blocks per stage and whether they have a conv3);
--arch, when also given, is checked against it.

_bn models and ResNets: the BatchNorm tensors are KEPT under their torchvision names
(features.1.weight, layer4.2.bn3.weight, .bias, .running_mean,
.running_var; num_batches_tracked dropped; ResNets in state-dict order) and metadata "bn_eps" records torchvision's eps; the engine folds BN
into the conv at load (docs/models.md), so one file serves both the engine
and any PyTorch check.

Labels (metadata "labels" = [[wnid, name], ...] in class-index order, so that
ILSVRC XML <name> wnids map to class indices). torchvision ships the 1000
readable names but no wnids, and no Debian package on our machines carries
them, so give one of:
  --labels FILE   one "wnid name" per line in class-index order, e.g. the
                  LOC_synset_mapping.txt of the ILSVRC Kaggle release
                  ("n01440764 tench, Tinca tinca"); torchvision's class
                  order is the sorted wnid order, which that file follows.
  --devkit FILE   ILSVRC2012_devkit_t12.tar.gz (needs scipy): the 1000 leaf
                  synsets of data/meta.mat, sorted by wnid.
Without either, ids are "0".."999" with torchvision's names, and a warning:
XML boxes then cannot be matched to classes. --names torchvision replaces
the file's names by torchvision's short ones ("tench").

Preprocessing metadata is torchvision's ImageNet eval transform: resize 256,
crop 224, bilinear, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).
"""

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

torch = None  # imported by main() after parsing, so --help works without PyTorch


def import_torch():
    global torch
    try:
        import torch as t
    except ImportError:
        raise SystemExit("export_torchvision: PyTorch is not importable by %s "
                         "(Debian: apt-get install python3-torch python3-torchvision)" % sys.executable)
    torch = t

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CONVS_TO_ARCH = {8: "vgg11", 10: "vgg13", 13: "vgg16", 16: "vgg19"}
RESNETS = {((2, 2, 2, 2), False): "resnet18", ((3, 4, 6, 3), False): "resnet34",
           ((3, 4, 6, 3), True): "resnet50", ((3, 4, 23, 3), True): "resnet101",
           ((3, 8, 36, 3), True): "resnet152"}
BN_EPS = 1e-5  # torch.nn.BatchNorm2d default, used by torchvision's make_layers


def load_state_dict(path):
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise SystemExit("export_torchvision: %s: not a state dict" % path)
    # DataParallel checkpoints prefix every key with "module."
    return {k[7:] if k.startswith("module.") else k: v for k, v in obj.items()}


def detect_resnet(sd):
    blocks = []
    for s in range(1, 5):
        idx = {int(k.split(".")[1]) for k in sd if k.startswith(f"layer{s}.")}
        blocks.append(max(idx) + 1 if idx else 0)
    key = (tuple(blocks), "layer1.0.conv3.weight" in sd)
    if key not in RESNETS:
        raise SystemExit("export_torchvision: blocks per stage %s (%s) is not a torchvision ResNet" % (
            list(blocks), "Bottleneck" if key[1] else "BasicBlock"))
    return RESNETS[key]


def detect_arch(sd):
    if "fc.weight" in sd and "conv1.weight" in sd:
        return detect_resnet(sd)
    convs = [k for k, v in sd.items()
             if k.startswith("features.") and k.endswith(".weight") and v.dim() == 4]
    bn = any(k.startswith("features.") and k.endswith(".running_mean") for k in sd)
    if len(convs) not in CONVS_TO_ARCH:
        raise SystemExit("export_torchvision: %d conv layers is not a VGG11/13/16/19" % len(convs))
    return CONVS_TO_ARCH[len(convs)] + ("_bn" if bn else "")


def torchvision_state_dict(arch, random_seed=None):
    """DEFAULT (ImageNet) weights, or random_seed's random initialisation."""
    import torchvision
    if random_seed is None:
        return getattr(torchvision.models, arch)(weights="DEFAULT").state_dict()
    torch.manual_seed(random_seed)
    return getattr(torchvision.models, arch)(weights=None).state_dict()


def torchvision_names():
    from torchvision.models._meta import _IMAGENET_CATEGORIES
    return list(_IMAGENET_CATEGORIES)


def read_labels_file(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(None, 1)
            if len(parts) != 2:
                raise SystemExit("export_torchvision: %s:%d: expected 'wnid name'" % (path, n))
            out.append((parts[0], parts[1]))
    return out


def read_devkit(path):
    """Leaf synsets of the ILSVRC2012 devkit's data/meta.mat, sorted by wnid
    (= torchvision's class order, as ImageFolder sorts the class folders)."""
    import io
    import tarfile
    import scipy.io
    with tarfile.open(path) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("data/meta.mat"))
        mat = scipy.io.loadmat(io.BytesIO(tar.extractfile(member).read()), squeeze_me=True)
    leaves = [(str(s["WNID"]), str(s["words"])) for s in mat["synsets"]
              if int(s["num_children"]) == 0]
    return sorted(leaves)


def imagenet_labels(args, n_classes):
    names = torchvision_names()
    if args.labels:
        labels = read_labels_file(args.labels)
    elif args.devkit:
        labels = read_devkit(args.devkit)
    else:
        print("export_torchvision: warning: no --labels/--devkit; class ids are indices, "
              "so ILSVRC XML wnids will not map to classes", file=sys.stderr)
        labels = [(str(i), names[i] if n_classes == len(names) else str(i))
                  for i in range(n_classes)]
    if len(labels) != n_classes:
        raise SystemExit("export_torchvision: %d labels for %d classes" % (len(labels), n_classes))
    if args.labels or args.devkit:
        wnids = [w for w, _ in labels]
        if wnids != sorted(wnids):
            print("export_torchvision: warning: labels are not in sorted-wnid order, "
                  "torchvision's class order", file=sys.stderr)
        if args.names == "torchvision" and n_classes == len(names):
            labels = [(w, names[i]) for i, (w, _) in enumerate(labels)]
    return labels


def export(sd, arch_hint, out, labels_args, source):
    arch = detect_arch(sd)
    if arch_hint and arch_hint != arch:
        raise SystemExit("export_torchvision: --arch %s but the weights are %s" % (arch_hint, arch))
    resnet = arch.startswith("resnet")
    n_classes = sd["fc.weight" if resnet else "classifier.6.weight"].shape[0]
    labels = imagenet_labels(labels_args, n_classes)
    from export_safetensors import vgg_metadata
    meta = vgg_metadata(arch, labels, IMAGENET_MEAN, IMAGENET_STD, resize=256, crop=224,
                        avgpool=1 if resnet else 7, interpolation="bilinear", arch=arch,
                        source=source)
    if arch.endswith("_bn") or resnet:
        meta["bn_eps"] = repr(BN_EPS)
    sd = {k: v.float() for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    from export_safetensors import write_safetensors, write_vgg
    if resnet:
        write_safetensors(out, list(sd.items()), meta)
    else:
        write_vgg(out, sd, meta)
    return arch


def engine_check(engine, model_path, ref, transform, tmp):
    """The engine's top-5 logits for a test image vs torchvision's; -> max |diff|
    relative to the largest logit, or None when the engine failed."""
    import subprocess
    from PIL import Image
    import numpy as np
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:260, 0:300]
    img = np.stack([xx * 255 // 300, yy * 255 // 260, (xx + yy) % 256], -1)
    img = (img + rng.integers(0, 40, img.shape)).clip(0, 255).astype(np.uint8)
    path = os.path.join(tmp, "engine_check.png")
    Image.fromarray(img).save(path)
    with Image.open(path) as im:
        x = transform(im.convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        want = ref(x)[0].double()
    res = subprocess.run([engine, "predict", "--backend", "cpu", "--model", model_path, "--json",
                          "--topk", "5", path], capture_output=True, text=True)
    if res.returncode != 0:
        print("engine failed: " + res.stderr.strip())
        return None
    top = json.loads(res.stdout.splitlines()[0])["top"]
    scale = max(1.0, float(want.abs().max()))
    diff = max(abs(t["logit"] - float(want[t["class"]])) for t in top) / scale
    if top[0]["class"] != int(want.argmax()) and float(want.max() - want[top[0]["class"]]) > 1e-3 * scale:
        diff = float("inf")
    return diff


def self_test(engine=None):
    """Random-init torchvision vgg11, vgg11_bn, resnet18 and resnet50 -> .pth
    -> safetensors -> predict_torch.load_model; outputs must match torchvision's bit for bit
    (same modules, same weights). With engine (the ./attrib binary), the
    engine must load each file (folding BN itself) and give torchvision's
    logits on a test image to 1e-3 of the largest."""
    import torchvision
    from predict_torch import load_model
    torch.manual_seed(0)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        labels_path = os.path.join(tmp, "labels.txt")
        with open(labels_path, "w") as f:
            for i, n in enumerate(torchvision_names()):
                f.write("n%08d %s\n" % (i, n))  # fake but sorted wnids
        for arch in ["vgg11", "vgg11_bn", "resnet18", "resnet50"]:
            ref = getattr(torchvision.models, arch)(weights=None)
            if arch.endswith("_bn") or arch.startswith("resnet"):  # non-trivial BN statistics
                for m in ref.modules():
                    if isinstance(m, torch.nn.BatchNorm2d):
                        m.running_mean.uniform_(-0.5, 0.5)
                        m.running_var.uniform_(0.5, 2.0)
                        m.weight.data.uniform_(0.5, 1.5)
                        m.bias.data.uniform_(-0.2, 0.2)
            ref.eval()
            pth = os.path.join(tmp, arch + ".pth")
            torch.save(ref.state_dict(), pth)
            out = os.path.join(tmp, arch + ".safetensors")
            args = argparse.Namespace(labels=labels_path, devkit=None, names="file")
            got_arch = export(load_state_dict(pth), arch, out, args, "self-test")
            model, meta, labels, transform = load_model(out)
            x = torch.randn(2, 3, 224, 224)
            with torch.no_grad():
                diff = float((model(x) - ref(x)).abs().max())
            good = (got_arch == arch and diff == 0.0 and len(labels) == 1000
                    and labels[0] == ("n00000000", "tench") and meta["crop"] == "224"
                    and (("bn_eps" in meta) == (arch.endswith("_bn") or arch.startswith("resnet"))))
            line = "%-9s arch %-9s keys %3d max|diff| %.3g labels %d" % (
                arch, got_arch, len(model.state_dict()), diff, len(labels))
            if engine:
                ediff = engine_check(engine, out, ref, transform, tmp)
                good &= ediff is not None and ediff <= 1e-3
                line += " engine rel|diff| %s" % ("failed" if ediff is None else "%.3g" % ediff)
            print(line + (" -> OK" if good else " -> NOT OK"))
            sys.stdout.flush()
            ok &= good
    print("Result =", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def main(argv=None):
    # The docstring's first paragraph is the description, the rest the epilog:
    # argparse would cut a one-line slice mid-sentence.
    head, _, rest = __doc__.partition("\n\n")
    p = argparse.ArgumentParser(description=" ".join(head.split()), epilog=rest,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pth", help="torchvision VGG state dict (.pth)")
    p.add_argument("--arch", choices=sorted([a + s for a in CONVS_TO_ARCH.values() for s in ("", "_bn")] +
                                            list(RESNETS.values())))
    p.add_argument("--labels", help="'wnid name' per line, class-index order")
    p.add_argument("--devkit", help="ILSVRC2012_devkit_t12.tar.gz")
    p.add_argument("--names", choices=["file", "torchvision"], default="file")
    p.add_argument("--random-init", type=int, metavar="SEED",
                   help="with --arch: torchvision's random initialisation (seeded), no download")
    p.add_argument("--out")
    p.add_argument("--self-test", action="store_true")
    p.add_argument("--engine", help="with --self-test: also check this attrib binary on the files")
    a = p.parse_args(argv)
    if a.self_test:
        import_torch()
        return self_test(a.engine)
    if not a.out or not (a.pth or a.arch):
        p.error("need --out and --pth (or --arch to download)")
    if a.random_init is not None and (a.pth or not a.arch):
        p.error("--random-init needs --arch and no --pth")
    import_torch()
    if a.pth:
        sd = load_state_dict(a.pth)
        source = "torchvision checkpoint %s" % os.path.basename(a.pth)
    elif a.random_init is not None:
        sd = torchvision_state_dict(a.arch, a.random_init)
        source = "torchvision.models.%s(weights=None), torch.manual_seed(%d)" % (a.arch, a.random_init)
    else:
        sd = torchvision_state_dict(a.arch)
        source = "torchvision.models.%s(weights='DEFAULT')" % a.arch
    arch = export(sd, a.arch, a.out, a, source)
    print("wrote %s (%s, %d tensors)" % (a.out, arch,
                                         sum(1 for k in sd if not k.endswith("num_batches_tracked"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
