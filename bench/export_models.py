"""Exports the benchmark models to ONNX (opset 17, batch 1) with their input.

    /usr/bin/python3 bench/export_models.py OUT_DIR [NAME ...]

Writes OUT_DIR/NAME/model.onnx and OUT_DIR/NAME/input.npy. A model already
exported is kept (delete its folder to export it again).
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402

OPSET = 17


def export(name, out_dir):
    folder = os.path.join(out_dir, name)
    path = os.path.join(folder, "model.onnx")
    if os.path.exists(path):
        return
    os.makedirs(folder, exist_ok=True)
    model = models.build(name)
    x = models.make_input(name)
    input_name = models.MODELS[name][1]
    with torch.no_grad():
        torch.onnx.export(model, (torch.from_numpy(x),), path + ".tmp", opset_version=OPSET,
                          input_names=[input_name], output_names=["output"], do_constant_folding=True)
    np.save(os.path.join(folder, "input.npy"), x)
    os.replace(path + ".tmp", path)
    print(f"exported {name}: {os.path.getsize(path) / 1e6:.1f} MB", flush=True)


def main():
    parser = argparse.ArgumentParser(description="Exports the benchmark models to ONNX with their input.")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="writes OUT_DIR/NAME/model.onnx and input.npy")
    parser.add_argument("names", metavar="NAME", nargs="*",
                        help=f"models to export (default: all of {', '.join(models.MODELS)})")
    args = parser.parse_args()
    for name in args.names:
        if name not in models.MODELS:
            parser.error(f"unknown model '{name}' (known: {', '.join(models.MODELS)})")
    for name in args.names or list(models.MODELS):
        export(name, args.out_dir)


if __name__ == "__main__":
    main()
