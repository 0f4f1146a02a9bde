"""Trains small classifiers on real data (scikit-learn's handwritten digits) and
exports them to ONNX with calibration and held-out validation sets, so that
quantization is measured on trained weights and real inputs.

    /usr/bin/python3 bench/quant/train.py [--out DIR]        # default bench/out/quant
    /usr/bin/python3 bench/quant/train.py --tests-data [--out DIR]   # default tests/data/quant

Needs Debian's python3-torch, python3-sklearn, python3-onnx and python3-numpy.
Everything is seeded and trained on one thread, so a second run writes the
same bytes (checked: the ONNX files and every .npy are byte-identical).

The data: sklearn.datasets.load_digits (1797 8x8 images of the digits 0-9,
pixels 0..16), scaled to [0, 1]. One fixed permutation splits it into
    validation  360 images, never trained on (held out)
    calibration 128 images, never trained on (quantization ranges come from here)
    training   1309 images
The models (each takes `image`, float32 [1, 1, 8, 8], and returns `logits`,
float32 [1, 10]; batch 1, as the latency benchmarks run):
    digits_cnn          3x3 convs with BatchNorm+ReLU, a residual block, a
                        stride-2 conv, global average pool, Linear
    digits_transformer  each image row is a token (8 tokens of 8 pixels):
                        Linear embedding + learned positions, 2 post-norm
                        encoder layers (4-head softmax attention, exact GELU
                        FFN, LayerNorm), mean pool, Linear — the BERT-like case
    digits_mlp          64-128-64-10 with ReLU

Written (full run, OUT = bench/out/quant):
    OUT/digits/calibration/set_NNN/image.npy   64 sets, batch 1
    OUT/digits/validation/set_NNN/image.npy    360 sets, batch 1
    OUT/digits/validation_images.npy           [360, 1, 8, 8], the same images stacked
    OUT/digits/validation_labels.npy           int64 [360]
    OUT/MODEL/model.onnx, OUT/MODEL/input.npy (validation image 0, for timing),
    OUT/MODEL/reference_logits.npy (PyTorch fp32 logits on the validation set),
    OUT/MODEL/meta.json (held-out top-1 accuracy and the training details)
With --tests-data (OUT = tests/data/quant), the commit-sized subset the tests use:
    digits_cnn.onnx, digits_transformer.onnx,
    calibration/set_NNN/image.npy  32 sets, batch 1
    validation/set_NNN/image.npy   200 sets, batch 1
    validation_labels.npy          int64 [200]
    digits_cnn_logits.npy, digits_transformer_logits.npy   PyTorch fp32 logits [200, 10]
    accuracy.json                  held-out top-1 of each model on those 200
"""
import argparse
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
from torch import nn

SEED = 0
OPSET = 17
N_VALIDATION = 360
N_CALIBRATION = 128


# --- the data ------------------------------------------------------------------
def load_splits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(labels))
    val = order[:N_VALIDATION]
    cal = order[N_VALIDATION:N_VALIDATION + N_CALIBRATION]
    train = order[N_VALIDATION + N_CALIBRATION:]
    return {name: (images[idx], labels[idx]) for name, idx in
            (("train", train), ("calibration", cal), ("validation", val))}


# --- the models ------------------------------------------------------------------
def conv_bn(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout))


class ResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.a, self.b = conv_bn(channels, channels), conv_bn(channels, channels)

    def forward(self, x):
        return torch.relu(x + self.b(torch.relu(self.a(x))))


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn(1, 16)
        self.block = ResidualBlock(16)
        self.down = conv_bn(16, 32, stride=2)  # 8x8 -> 4x4
        self.classifier = nn.Linear(32, 10)

    def forward(self, image):
        x = torch.relu(self.stem(image))
        x = self.block(x)
        x = torch.relu(self.down(x))
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class Attention(nn.Module):
    """Multi-head softmax attention; batch is left as -1 in every reshape so the
    exported graph bakes in no batch size."""

    def __init__(self, hidden, heads, seq):
        super().__init__()
        self.hidden, self.heads, self.seq, self.head_dim = hidden, heads, seq, hidden // heads
        self.query, self.key, self.value = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)

    def split(self, x):  # [B, seq, hidden] -> [B, heads, seq, head_dim]
        return x.reshape(-1, self.seq, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        context = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.out(context.transpose(1, 2).reshape(-1, self.seq, self.hidden))


class EncoderLayer(nn.Module):
    """BERT's layer: post-norm attention and exact-GELU feed-forward blocks."""

    def __init__(self, hidden, heads, ffn, seq):
        super().__init__()
        self.attention = Attention(hidden, heads, seq)
        self.norm1 = nn.LayerNorm(hidden)
        self.ffn_in, self.ffn_out = nn.Linear(hidden, ffn), nn.Linear(ffn, hidden)
        self.gelu = nn.GELU()
        self.norm2 = nn.LayerNorm(hidden)

    def forward(self, x):
        x = self.norm1(x + self.attention(x))
        return self.norm2(x + self.ffn_out(self.gelu(self.ffn_in(x))))


class DigitsTransformer(nn.Module):
    def __init__(self, hidden=32, heads=4, ffn=64, layers=2, seq=8):
        super().__init__()
        self.seq = seq
        self.embed = nn.Linear(8, hidden)
        self.positions = nn.Parameter(torch.randn(1, seq, hidden) * 0.1)
        self.layers = nn.ModuleList([EncoderLayer(hidden, heads, ffn, seq) for _ in range(layers)])
        self.classifier = nn.Linear(hidden, 10)

    def forward(self, image):
        x = self.embed(image.reshape(-1, self.seq, 8)) + self.positions  # each row a token
        for layer in self.layers:
            x = layer(x)
        return self.classifier(x.mean(dim=1))


class DigitsMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                                 nn.Linear(64, 10))

    def forward(self, image):
        return self.net(image)


# name -> (class, epochs, learning rate, description)
MODELS = {
    "digits_cnn": (DigitsCNN, 30, 3e-3, "CNN: conv-BN-ReLU, residual block, stride-2 conv, global pool, Linear"),
    "digits_transformer": (DigitsTransformer, 60, 2e-3,
                           "transformer encoder: 8 row tokens, d32, 4 heads, FFN 64, 2 post-norm layers, GELU"),
    "digits_mlp": (DigitsMLP, 40, 2e-3, "MLP 64-128-64-10, ReLU"),
}
TESTS_DATA_MODELS = ["digits_cnn", "digits_transformer"]


# --- training ------------------------------------------------------------------
def train(name, splits):
    cls, epochs, lr, _ = MODELS[name]
    torch.manual_seed(SEED)
    model = cls()
    x, y = (torch.from_numpy(a) for a in splits["train"])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    gen = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(y), generator=gen).split(32):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        sched.step()
    model.eval()
    return model


def logits_of(model, images):
    with torch.no_grad():
        return model(torch.from_numpy(images)).numpy().astype(np.float32)


def export(model, path):
    """ONNX at opset 17, batch 1, checked with onnx.checker."""
    import onnx

    with torch.no_grad():
        torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), path, opset_version=OPSET, input_names=["image"],
                          output_names=["logits"], do_constant_folding=True)
    onnx.checker.check_model(onnx.load(path), full_check=True)


# --- writing the sets ------------------------------------------------------------
def write_sets(folder, images):
    """One subfolder per set (set_000, ...), each holding image.npy of batch 1 (docs/quantization.md)."""
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    for i, image in enumerate(images):
        os.makedirs(os.path.join(folder, f"set_{i:03d}"))
        np.save(os.path.join(folder, f"set_{i:03d}", "image.npy"), image[None])


def top1(logits, labels):
    return float((logits.argmax(axis=1) == labels).mean())


def write_full(out, splits, names):
    data = os.path.join(out, "digits")
    cal_images, _ = splits["calibration"]
    val_images, val_labels = splits["validation"]
    write_sets(os.path.join(data, "calibration"), cal_images[:64])
    write_sets(os.path.join(data, "validation"), val_images)
    np.save(os.path.join(data, "validation_images.npy"), val_images)
    np.save(os.path.join(data, "validation_labels.npy"), val_labels)
    for name in names:
        model = train(name, splits)
        folder = os.path.join(out, name)
        os.makedirs(folder, exist_ok=True)
        export(model, os.path.join(folder, "model.onnx"))
        np.save(os.path.join(folder, "input.npy"), val_images[:1])
        logits = logits_of(model, val_images)
        np.save(os.path.join(folder, "reference_logits.npy"), logits)
        meta = {"model": name, "description": MODELS[name][3], "epochs": MODELS[name][1],
                "parameters": sum(p.numel() for p in model.parameters()),
                "train_top1": top1(logits_of(model, splits["train"][0]), splits["train"][1]),
                "validation_top1": top1(logits, val_labels), "validation_count": len(val_labels),
                "calibration_sets": 64, "opset": OPSET}
        with open(os.path.join(folder, "meta.json"), "w") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")
        print(f"{name}: held-out top-1 {meta['validation_top1']:.4f} on {len(val_labels)}, "
              f"{meta['parameters']} parameters", flush=True)


def write_tests_data(out, splits):
    cal_images, _ = splits["calibration"]
    val_images, val_labels = splits["validation"]
    val_images, val_labels = val_images[:200], val_labels[:200]
    os.makedirs(out, exist_ok=True)
    write_sets(os.path.join(out, "calibration"), cal_images[:32])
    write_sets(os.path.join(out, "validation"), val_images)
    np.save(os.path.join(out, "validation_labels.npy"), val_labels)
    accuracy = {}
    for name in TESTS_DATA_MODELS:
        model = train(name, splits)
        export(model, os.path.join(out, f"{name}.onnx"))
        logits = logits_of(model, val_images)
        np.save(os.path.join(out, f"{name}_logits.npy"), logits)
        accuracy[name] = {"validation_top1": top1(logits, val_labels), "validation_count": len(val_labels)}
        print(f"{name}: held-out top-1 {accuracy[name]['validation_top1']:.4f} on {len(val_labels)}", flush=True)
    with open(os.path.join(out, "accuracy.json"), "w") as f:
        json.dump(accuracy, f, indent=2, sort_keys=True)
        f.write("\n")


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests-data", action="store_true", help="write the commit-sized set into tests/data/quant")
    parser.add_argument("--out", help="output folder (default bench/out/quant, or tests/data/quant with --tests-data)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, for the full run")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one thread: the same float reductions in the same order on every run
    torch.use_deterministic_algorithms(True)
    splits = load_splits()
    if args.tests_data:
        write_tests_data(args.out or os.path.join(root, "tests", "data", "quant"), splits)
        return
    names = args.models.split(",")
    for name in names:
        if name not in MODELS:
            sys.exit(f"train.py: unknown model '{name}' (known: {', '.join(MODELS)})")
    write_full(args.out or os.path.join(root, "bench", "out", "quant"), splits, names)


if __name__ == "__main__":
    main()
