#!/usr/bin/python3
"""PyTorch's top-3 predictions for the shipped model on the committed samples
(tools/predict_torch.py is the oracle): tests/goldens/samples/predictions.jsonl,
with the model file's SHA-256 so a retrained model is noticed."""
import hashlib
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "goldens", "samples")
    model = os.path.join(ROOT, "weights", "vgg16_mini.safetensors")
    with open(model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    res = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "predict_torch.py"), "--model", model,
                          "--list", os.path.join(ROOT, "weights", "samples", "list.txt"), "--json", "-k", "3"],
                         check=True, capture_output=True, text=True, cwd=ROOT)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "predictions.jsonl"), "w") as f:
        f.write(json.dumps({"model_sha256": sha}) + "\n")
        f.write(res.stdout)
    print(f"{len(res.stdout.splitlines())} predictions for model {sha[:12]}")


if __name__ == "__main__":
    main()
