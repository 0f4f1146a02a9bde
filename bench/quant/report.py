"""Writes bench/quant/RESULTS.md (to stdout) from what bench/quant/run.sh left
in its out folder.

    /usr/bin/python3 bench/quant/report.py --out DIR --models a,b --kiln KILN --threads N --command "..."

Speed: median latency of each variant, and ONNX Runtime fp32's (and ONNX
Runtime QDQ's) median divided by it: above 1 means the variant is faster.
Accuracy, against ONNX Runtime fp32's outputs on the same validation inputs:
SQNR = 10 log10(sum ref^2 / sum (ref - x)^2) in dB, max |ref - x|, top-1
agreement (classifier outputs), and for the trained digits models held-out
top-1 against the true labels.
"""
import argparse
import datetime
import json
import os
import platform
import re

import numpy as np

VARIANTS = [
    ("ort_fp32", "ONNX Runtime fp32"),
    ("ort_qdq", "ONNX Runtime, Kiln's QDQ model"),
    ("kiln_fp32", "Kiln fp32"),
    ("kiln_int8", "Kiln int8 (static, min-max)"),
    ("kiln_int8_percentile", "Kiln int8 (static, percentile)"),
    ("kiln_int8_entropy", "Kiln int8 (static, entropy)"),
    ("kiln_dynamic_int8", "Kiln dynamic int8"),
    ("kiln_bf16", "Kiln bf16"),
]
DESCRIPTIONS = {
    "digits_cnn": "trained CNN (conv-BN-ReLU, residual block, global pool, Linear), digits 1x1x8x8",
    "digits_transformer": "trained transformer encoder (8 row tokens, d32, 2 layers, GELU, LayerNorm), digits",
    "digits_mlp": "trained MLP 64-128-64-10, digits",
    "resnet50": "ResNet-50, random weights, 1x3x224x224",
    "bert_base": "BERT-base encoder, random weights, 1x128 tokens",
}


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def why_failed(folder, step):
    """None when STEP ran and exited 0, else a one-line reason."""
    rc = read(os.path.join(folder, step + ".rc"))
    if rc is None:
        return "not run"
    if rc in ("124", "137"):
        return f"{step}: timeout after {read(os.path.join(folder, step + '.seconds'))} s"
    if rc == "0":
        return None
    lines = [line for line in (read(os.path.join(folder, step + ".err")) or "").splitlines() if line.strip()]
    return re.sub(r"^kiln: error: ", "", lines[-1] if lines else f"exit {rc}")[:240]


def variant_result(folder, name):
    """(median ms or None, compile seconds or None, note)."""
    na = read(os.path.join(folder, name + ".na"))
    if na:
        return None, None, na
    compile_step = {"ort_qdq": "ort_qdq.export", "ort_fp32": None}.get(name, name + ".compile")
    compile_s = None
    if compile_step:
        why = why_failed(folder, compile_step)
        if why:
            return None, None, f"compile failed: {why}" if why != "not run" else why
        compile_s = float(read(os.path.join(folder, compile_step + ".seconds")))
    why = why_failed(folder, name)
    if why:
        return None, compile_s, f"failed: {why}" if why != "not run" else why
    try:
        median = float(json.loads(read(os.path.join(folder, name + ".json")).splitlines()[-1])["median_ms"])
    except (ValueError, AttributeError, IndexError, KeyError, TypeError):
        return None, compile_s, "no timing printed"
    return median, compile_s, ""


def sqnr_db(ref, x):
    noise = float(np.sum((ref.astype(np.float64) - x) ** 2))
    signal = float(np.sum(ref.astype(np.float64) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(signal / noise)


def accuracy_row(folder, name, reference, labels):
    path = os.path.join(folder, name + ".outputs.npy")
    if not os.path.exists(path):
        return None
    x = np.load(path).astype(np.float32)
    if reference is None or x.shape != reference.shape:
        return None
    row = {"sqnr": sqnr_db(reference, x), "max_abs": float(np.abs(reference - x).max())}
    if x.ndim == 2:
        row["agree"] = float((x.argmax(1) == reference.argmax(1)).mean())
        if labels is not None:
            row["top1"] = float((x.argmax(1) == labels).mean())
    return row


def fmt(value, spec, missing="—"):
    return missing if value is None else format(value, spec)


def ratio(value):
    return "—" if value is None else f"{value:.2f}x"


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    load = open("/proc/loadavg").read().split()[:3]
    flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    isa = [f for f in ("avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8") if f in flags]
    return (f"{cpu} ({' '.join(isa) or 'no AVX-512'}), {os.cpu_count()} logical CPUs, {platform.system()} "
            f"{platform.release()}; load average {' '.join(load)}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--models", required=True)
    parser.add_argument("--kiln", required=True)
    parser.add_argument("--threads", required=True)
    parser.add_argument("--command", required=True)
    args = parser.parse_args()
    bench = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ort_pkg = os.path.join(bench, "node_modules", "onnxruntime-node", "package.json")
    ort_version = json.load(open(ort_pkg))["version"] if os.path.exists(ort_pkg) else "?"
    names = args.models.split(",")
    p = print

    p("# Quantized and reduced-precision inference: Kiln against ONNX Runtime")
    p()
    p(f"Generated by `{args.command}` on {datetime.date.today().isoformat()}.")
    p(f"Machine: {machine()}. Threads: {args.threads} per engine; ONNX Runtime {ort_version} (onnxruntime-node, CPU);")
    p(f"kiln: `{os.path.relpath(args.kiln, os.path.dirname(bench))}`.")
    p("The machine is shared with other work, so timings are indicative: compare ratios within one run.")
    p()
    p("Speed-up = the reference's median latency / the variant's (above 1: faster). Latency is for batch 1.")
    p("ResNet-50 and BERT-base have random weights: their int8 calibration uses a handful of random but")
    p("realistic inputs (smooth images with edges, ImageNet-normalized; token ids of real word pieces)")
    p("and their rows measure speed and numerical closeness only. Accuracy is measured on the digits models,")
    p("trained by `bench/quant/train.py` on scikit-learn's digits and validated on held-out images.")

    for m in names:
        folder = os.path.join(args.out, m)
        p()
        p(f"## {m}: {DESCRIPTIONS.get(m, '')}")
        p()
        ort_fp32, _, _ = variant_result(folder, "ort_fp32")
        ort_qdq, _, _ = variant_result(folder, "ort_qdq")
        p("| variant | median ms | vs ORT fp32 | vs ORT QDQ | compile s | note |")
        p("|---|---:|---:|---:|---:|---|")
        for name, title in VARIANTS:
            if not os.path.exists(os.path.join(folder, name + ".na")) and read(os.path.join(folder, name + ".rc")) is None \
                    and read(os.path.join(folder, name + ".compile.rc")) is None and name != "ort_qdq":
                continue  # a variant run.sh does not run for this model
            median, compile_s, note = variant_result(folder, name)
            vs_fp32 = ort_fp32 / median if median and ort_fp32 else None
            vs_qdq = ort_qdq / median if median and ort_qdq else None
            p(f"| {title} | {fmt(median, '.4g')} | {ratio(vs_fp32)} | {ratio(vs_qdq)} | {fmt(compile_s, '.1f')} | {note} |")

        ref_path = os.path.join(folder, "ort_fp32.outputs.npy")
        reference = np.load(ref_path) if os.path.exists(ref_path) else None
        labels_path = os.path.join(args.out, "digits", "validation_labels.npy")
        labels = np.load(labels_path) if m.startswith("digits_") and os.path.exists(labels_path) else None
        count = None if reference is None else reference.shape[0]
        p()
        if reference is None:
            p("Accuracy: no ONNX Runtime fp32 reference outputs (see `ort_fp32.eval.err`).")
            continue
        source = "held-out digits images" if labels is not None else "random-but-realistic inputs"
        p(f"Accuracy on {count} {source}, against ONNX Runtime fp32:")
        p()
        header = "| variant | SQNR dB | max abs err | top-1 agreement |" + (" held-out top-1 |" if labels is not None else "")
        p(header)
        p("|---|---:|---:|---:|" + ("---:|" if labels is not None else ""))
        for name, title in VARIANTS[1:]:  # every variant but the reference itself
            row = accuracy_row(folder, name, reference, labels)
            if row is None:
                continue
            line = (f"| {title} | {fmt(row['sqnr'], '.1f')} | {fmt(row['max_abs'], '.2e')} | "
                    f"{fmt(row.get('agree'), '.2%')} |")
            if labels is not None:
                line += f" {fmt(row.get('top1'), '.2%')} |"
            p(line)

    targets(args.out, names, p)


def targets(out, names, p):
    """Issue 8's targets: speed on ResNet-50 and BERT-base, accuracy on the trained digits models."""
    rows = []

    def check(model, what, ok):
        rows.append(f"| {model} | {what} | {'not measured' if ok is None else ('met' if ok else 'not met')} |")

    for m in (n for n in names if n in ("resnet50", "bert_base")):
        folder = os.path.join(out, m)
        ort_fp32 = variant_result(folder, "ort_fp32")[0]
        ort_qdq = variant_result(folder, "ort_qdq")[0]
        int8 = [t for t in (variant_result(folder, v)[0] for v in ("kiln_int8", "kiln_dynamic_int8")) if t]
        int8 = min(int8) if int8 else None  # the faster of static and dynamic int8
        bf16 = variant_result(folder, "kiln_bf16")[0]
        check(m, "int8 >= 4x ONNX Runtime fp32", None if not (int8 and ort_fp32) else ort_fp32 / int8 >= 4)
        check(m, "int8 faster than ONNX Runtime on the QDQ model", None if not (int8 and ort_qdq) else int8 < ort_qdq)
        check(m, "bf16 >= 3x ONNX Runtime fp32", None if not (bf16 and ort_fp32) else ort_fp32 / bf16 >= 3)
    labels_path = os.path.join(out, "digits", "validation_labels.npy")
    for m in (n for n in names if n.startswith("digits_")):
        folder = os.path.join(out, m)
        ref_path = os.path.join(folder, "ort_fp32.outputs.npy")
        reference = np.load(ref_path) if os.path.exists(ref_path) else None
        labels = np.load(labels_path) if os.path.exists(labels_path) else None
        int8 = accuracy_row(folder, "kiln_int8", reference, labels)
        bf16 = accuracy_row(folder, "kiln_bf16", reference, labels)
        check(m, "int8 (min-max): top-1 agreement >= 99% and SQNR >= 30 dB",
              None if int8 is None else int8["agree"] >= 0.99 and int8["sqnr"] >= 30)
        check(m, "bf16: SQNR >= 35 dB", None if bf16 is None else bf16["sqnr"] >= 35)
    if rows:
        p()
        p("## Targets (issue 8)")
        p()
        p("Speed on ResNet-50 and BERT-base (int8: the faster of static and dynamic); accuracy on the trained")
        p("digits models, against ONNX Runtime fp32 on the held-out images.")
        p()
        p("| model | target | status |")
        p("|---|---|---|")
        for row in rows:
            p(row)


if __name__ == "__main__":
    main()
