"""The benchmark models: built from Debian's python3-torch/python3-torchvision
with random weights (seeded, so every process builds the same weights) and
nothing downloaded. Shared by export_models.py and torch_bench.py.
"""
import math

import numpy as np
import torch
from torch import nn

SEED = 0


class SelfAttention(nn.Module):
    def __init__(self, hidden, heads, seq, batch=1):
        super().__init__()
        self.heads, self.head_dim, self.seq, self.hidden, self.batch = heads, hidden // heads, seq, hidden, batch
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)

    def split(self, x):  # [batch, seq, hidden] -> [batch, heads, seq, head_dim]
        return x.reshape(self.batch, self.seq, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        context = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.out(context.transpose(1, 2).reshape(self.batch, self.seq, self.hidden))


class EncoderLayer(nn.Module):
    """A BERT layer: post-norm attention and GELU feed-forward blocks."""

    def __init__(self, hidden, heads, ffn, seq, eps, batch=1):
        super().__init__()
        self.attention = SelfAttention(hidden, heads, seq, batch)
        self.norm1 = nn.LayerNorm(hidden, eps=eps)
        self.ffn_in = nn.Linear(hidden, ffn)
        self.gelu = nn.GELU()
        self.ffn_out = nn.Linear(ffn, hidden)
        self.norm2 = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x):
        x = self.norm1(x + self.attention(x))
        return self.norm2(x + self.ffn_out(self.gelu(self.ffn_in(x))))


class Encoder(nn.Module):
    def __init__(self, layers, hidden, heads, ffn, seq, eps=1e-12, batch=1):
        super().__init__()
        self.layers = nn.ModuleList([EncoderLayer(hidden, heads, ffn, seq, eps, batch) for _ in range(layers)])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class Bert(nn.Module):
    """BERT-base: token, position and segment embeddings, then 12 encoder layers."""

    def __init__(self, seq=128, vocab=30522, hidden=768, layers=12, heads=12, ffn=3072, batch=1):
        super().__init__()
        self.seq = seq
        self.words = nn.Embedding(vocab, hidden)
        self.positions = nn.Embedding(512, hidden)
        self.segments = nn.Embedding(2, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.encoder = Encoder(layers, hidden, heads, ffn, seq, batch=batch)

    def forward(self, input_ids):
        positions = self.positions.weight[: self.seq].unsqueeze(0)
        x = self.words(input_ids) + positions + self.segments.weight[0]
        return self.encoder(self.norm(x))


def _vision(name):
    import torchvision

    def build(batch=1):  # the batch is the input's alone
        return getattr(torchvision.models, name)()  # weights default to None: random init, no download

    return build


def _image(rng, batch=1):
    return rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)


# name -> (builder(batch), input name, input maker(rng, batch), description at
# batch 1). The sequence models reshape with their batch baked in, as an
# exported graph's static shapes are.
MODELS = {
    "squeezenet1_1": (_vision("squeezenet1_1"), "input", _image, "SqueezeNet 1.1, 1x3x224x224"),
    "mobilenet_v2": (_vision("mobilenet_v2"), "input", _image, "MobileNetV2, 1x3x224x224"),
    "efficientnet_b0": (_vision("efficientnet_b0"), "input", _image, "EfficientNet-B0, 1x3x224x224"),
    "resnet50": (_vision("resnet50"), "input", _image, "ResNet-50, 1x3x224x224"),
    "small_encoder": (
        lambda batch=1: Encoder(layers=4, hidden=256, heads=4, ffn=1024, seq=128, batch=batch),
        "hidden",
        lambda rng, batch=1: rng.standard_normal((batch, 128, 256)).astype(np.float32),
        "transformer encoder, 4 layers, d256, 4 heads, FFN 1024, seq 128",
    ),
    "bert_base": (
        lambda batch=1: Bert(batch=batch),
        "input_ids",
        lambda rng, batch=1: rng.integers(0, 30522, size=(batch, 128), dtype=np.int64),
        "BERT-base encoder, 12 layers, d768, 12 heads, FFN 3072, seq 128",
    ),
}

# More torchvision networks, outside the default sweep (bench/run.sh
# --models ...): the grouped, 5x5-depthwise, hard-swish, channel-shuffle and
# inception shapes the six above lack.
for _name, _what in [
    ("resnext50_32x4d", "ResNeXt-50 32x4d"),
    ("regnet_y_400mf", "RegNetY-400MF"),
    ("mnasnet1_0", "MnasNet 1.0"),
    ("mobilenet_v3_large", "MobileNetV3-Large"),
    ("shufflenet_v2_x1_0", "ShuffleNetV2 1.0x"),
    ("googlenet", "GoogLeNet"),
]:
    MODELS[_name] = (_vision(_name), "input", _image, f"{_what}, 1x3x224x224")


def build(name, batch=1):
    """The model in eval mode, with the same random weights in every process
    (and at every batch size)."""
    torch.manual_seed(SEED)
    model = MODELS[name][0](batch)
    model.eval()
    return model


def make_input(name, batch=1):
    return MODELS[name][2](np.random.default_rng(SEED), batch)


def describe(name, batch=1):
    """The model's description, its input's batch named when it is not 1."""
    text = MODELS[name][3]
    if batch == 1:
        return text
    if "1x3x224x224" in text:
        return text.replace("1x3x224x224", f"{batch}x3x224x224")
    return f"{text}, batch {batch}"
