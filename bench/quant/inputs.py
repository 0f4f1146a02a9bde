"""Calibration and validation inputs for the random-weight benchmark models
(ResNet-50, BERT-base from bench/models.py). Their weights are random, so
these inputs only make quantized code run on value ranges like real ones; the
accuracy of a quantized model is measured on the trained digits models.

    /usr/bin/python3 bench/quant/inputs.py NAME OUT_DIR [--calibration N] [--validation N]

Writes OUT_DIR/calibration/set_NNN/INPUT.npy (N sets, batch 1; INPUT is the
model's input name, docs/quantization.md's layout) and
OUT_DIR/validation_inputs.npy (the validation samples stacked, disjoint from
the calibration ones).
  resnet50   natural-image-like pictures: smooth random colour fields plus
             edges and noise in [0, 1], normalized with ImageNet's mean and std
  bert_base  token ids as a tokenizer writes them: [CLS]=101, word pieces
             drawn from the vocabulary's word range (1996..29611), [SEP]=102
"""
import argparse
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import models  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)


def picture(rng):
    """A [1, 3, 224, 224] normalized image: a smooth colour field (bilinear 8x8 -> 224), a few hard edges, noise."""
    coarse = rng.uniform(0, 1, (3, 8, 8)).astype(np.float32)
    grid = np.linspace(0, 7, 224, dtype=np.float32)
    i0 = np.minimum(grid.astype(int), 6)
    f = grid - i0
    rows = coarse[:, i0, :] * (1 - f)[None, :, None] + coarse[:, i0 + 1, :] * f[None, :, None]
    image = rows[:, :, i0] * (1 - f)[None, None, :] + rows[:, :, i0 + 1] * f[None, None, :]
    for _ in range(3):  # rectangles of one colour: edges, as objects give
        y, x = rng.integers(0, 180, 2)
        h, w = rng.integers(20, 80, 2)
        image[:, y:y + h, x:x + w] = rng.uniform(0, 1, (3, 1, 1))
    image = np.clip(image + rng.normal(0, 0.03, image.shape), 0, 1).astype(np.float32)
    return ((image - MEAN) / STD)[None].astype(np.float32)


def sentence(rng):
    seq = 128
    ids = rng.integers(1996, 29612, size=(1, seq), dtype=np.int64)
    ids[0, 0], ids[0, -1] = 101, 102
    return ids


MAKERS = {"resnet50": picture, "bert_base": sentence}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("name", choices=sorted(MAKERS))
    parser.add_argument("out")
    parser.add_argument("--calibration", type=int, default=4)
    parser.add_argument("--validation", type=int, default=8)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    make, input_name = MAKERS[args.name], models.MODELS[args.name][1]
    cal = os.path.join(args.out, "calibration")
    if os.path.isdir(cal):
        shutil.rmtree(cal)
    for i in range(args.calibration):
        os.makedirs(os.path.join(cal, f"set_{i:03d}"))
        np.save(os.path.join(cal, f"set_{i:03d}", f"{input_name}.npy"), make(rng))
    np.save(os.path.join(args.out, "validation_inputs.npy"), np.concatenate([make(rng) for _ in range(args.validation)]))


if __name__ == "__main__":
    main()
