#!/usr/bin/python3
"""PyTorch's top-3 predictions for a shipped model on the committed samples
(tools/predict_torch.py is the oracle), with the model file's SHA-256 so a
retrained model is noticed:

  tools/make_sample_goldens.py [OUT_DIR] [--model weights/M.safetensors]

writes OUT_DIR/predictions.jsonl for weights/vgg16_mini.safetensors (the
default) and OUT_DIR/predictions_M.jsonl for any other model M."""
import argparse
import hashlib
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join("weights", "vgg16_mini.safetensors")


def golden_name(model):
    stem = os.path.basename(model)
    stem = stem[:-len(".safetensors")] if stem.endswith(".safetensors") else stem
    return "predictions.jsonl" if stem == "vgg16_mini" else "predictions_%s.jsonl" % stem


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out_dir", nargs="?", default=os.path.join(ROOT, "tests", "goldens", "samples"))
    p.add_argument("--model", default=DEFAULT_MODEL, help="relative to the repository root")
    a = p.parse_args(argv)
    model = os.path.join(ROOT, a.model)
    with open(model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    res = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "predict_torch.py"), "--model", model,
                          "--list", os.path.join(ROOT, "weights", "samples", "list.txt"), "--json", "-k", "3"],
                         check=True, capture_output=True, text=True, cwd=ROOT)
    os.makedirs(a.out_dir, exist_ok=True)
    out = os.path.join(a.out_dir, golden_name(a.model))
    with open(out, "w") as f:
        f.write(json.dumps({"model_sha256": sha}) + "\n")
        f.write(res.stdout)
    print(f"{out}: {len(res.stdout.splitlines())} predictions for model {sha[:12]}")


if __name__ == "__main__":
    main()
