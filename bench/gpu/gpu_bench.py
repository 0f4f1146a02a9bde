"""The GPU benchmark: Kiln's CUDA artifacts against PyTorch (eager,
torch.compile, torch.compile with CUDA graphs) and ONNX Runtime's CUDA
provider where the machine's onnxruntime has it, on the same GPU, in one
process, interleaved. Runs on the GPU machine (bench/gpu/run.sh prepares it).

    python3 bench/gpu/gpu_bench.py --kiln KILN --runtime LIBKILN_RT --out DIR \
        [--models resnet50,mobilenet_v2,bert_base] [--batches 1,32] [--iters 50] [--no-compile]

For each model (bench/models.py: the CPU benchmark's definitions, same seed)
and batch size: exports ONNX (opset 17, that batch), compiles it with `kiln compile --target
cuda` in fp32 and with `--cuda-precision fp16`, and times every engine on the
same input. Kiln runs through libkiln_rt's C API (ctypes) twice: `host I/O`
copies the input from host memory, replays the session's CUDA graph and copies
the output back; `device I/O` takes torch.cuda tensors (kiln_session_run_with
with KILN_MEMORY_DEVICE) and queues the run on PyTorch's stream, as PyTorch's
own calls are. PyTorch's inputs and outputs stay on the GPU. Medians of wall-clock time per run, after a synchronize. Writes
DIR/results.md (the table) and DIR/results.json, and prints the table.
"""
import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import models  # noqa: E402

MAX_RANK = 16
DTYPES = {np.dtype("float32"): 1, np.dtype("int64"): 7}


class KilnTensor(ctypes.Structure):
    _fields_ = [("dtype", ctypes.c_int32), ("rank", ctypes.c_int32), ("dims", ctypes.c_int64 * MAX_RANK),
                ("data", ctypes.c_void_p), ("bytes", ctypes.c_size_t)]


class KilnTensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int32), ("rank", ctypes.c_int32),
                ("dims", ctypes.POINTER(ctypes.c_int64)), ("dim_names", ctypes.c_void_p)]


class KilnRunOptions(ctypes.Structure):
    _fields_ = [("input_memory", ctypes.c_int32), ("output_memory", ctypes.c_int32), ("cuda_stream", ctypes.c_void_p),
                ("async_", ctypes.c_int32)]


KILN_MEMORY_DEVICE = 1


class KilnModel:
    """One artifact and one session, through the C API."""

    def __init__(self, lib, path, output_shape=None):
        self.lib = lib
        self.model, self.session = ctypes.c_void_p(), ctypes.c_void_p()
        err = ctypes.c_void_p()
        if lib.kiln_model_load(path.encode(), ctypes.byref(self.model), ctypes.byref(err)) != 0:
            raise RuntimeError(lib.kiln_error_message(err).decode())
        if lib.kiln_session_create(self.model, None, ctypes.byref(self.session), ctypes.byref(err)) != 0:
            raise RuntimeError(lib.kiln_error_message(err).decode())
        self.output = np.empty(output_shape or self.output_shape(), dtype=np.float32)
        self.device_options = KilnRunOptions(KILN_MEMORY_DEVICE, KILN_MEMORY_DEVICE, None, 1)

    def output_shape(self):
        info, err = KilnTensorInfo(), ctypes.c_void_p()
        if self.lib.kiln_model_output(self.model, 0, ctypes.byref(info), ctypes.byref(err)) != 0:
            raise RuntimeError(self.lib.kiln_error_message(err).decode())
        return tuple(info.dims[d] for d in range(info.rank))

    @staticmethod
    def tensor(dtype, shape, data, nbytes):
        t = KilnTensor()
        t.dtype, t.rank = dtype, len(shape)
        for i, d in enumerate(shape):
            t.dims[i] = d
        t.data, t.bytes = data, nbytes
        return t

    def call(self, inp, out, options=None):
        err = ctypes.c_void_p()
        opts = ctypes.byref(options) if options is not None else None
        if self.lib.kiln_session_run_with(self.session, ctypes.byref(inp), 1, ctypes.byref(out), 1, opts,
                                          ctypes.byref(err)) != 0:
            raise RuntimeError(self.lib.kiln_error_message(err).decode())

    def run(self, x):
        """Host memory in and out: the run copies the input to the GPU and the output back."""
        inp = self.tensor(DTYPES[x.dtype], x.shape, x.ctypes.data, x.nbytes)
        out = self.tensor(1, self.output.shape, self.output.ctypes.data, self.output.nbytes)
        self.call(inp, out)
        return self.output

    def run_device(self, xt, out):
        """torch.cuda tensors in and out, queued on PyTorch's current stream
        without waiting (as a PyTorch module call is)."""
        self.device_options.cuda_stream = torch.cuda.current_stream().cuda_stream or None
        inp = self.tensor(DTYPES[np.dtype(str(xt.dtype).replace("torch.", ""))], xt.shape, xt.data_ptr(),
                          xt.numel() * xt.element_size())
        o = self.tensor(1, out.shape, out.data_ptr(), out.numel() * 4)
        self.call(inp, o, self.device_options)
        return out


def load_runtime(path):
    lib = ctypes.CDLL(path)
    lib.kiln_error_message.restype = ctypes.c_char_p
    lib.kiln_error_message.argtypes = [ctypes.c_void_p]
    return lib


def export(name, batch, folder):
    path = os.path.join(folder, "model.onnx")
    x = models.make_input(name, batch)
    if not os.path.exists(path):
        model = models.build(name, batch)
        common = dict(opset_version=17, input_names=[models.MODELS[name][1]], output_names=["output"])
        with torch.no_grad():
            try:  # the TorchScript exporter, as bench/export_models.py uses on the CPU side
                torch.onnx.export(model, (torch.from_numpy(x),), path, do_constant_folding=True, dynamo=False, **common)
            except Exception as e:  # noqa: BLE001  (a PyTorch without it)
                print(f"TorchScript export failed ({e}); using the dynamo exporter", flush=True)
                torch.onnx.export(model, (torch.from_numpy(x),), path, dynamo=True, **common)
    return path, x


def compile_kiln(kiln, onnx_path, out, precision, extra=()):
    cmd = [kiln, "compile", onnx_path, "--target", "cuda", "-o", out, "-q"]
    if precision != "fp32":
        cmd += ["--cuda-precision", precision]
    cmd += list(extra)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def timed(fn, sync, events):
    """(wall ms, CUDA-event ms) of one call: the events bracket it on PyTorch's
    current stream, which Kiln's device-I/O runs and PyTorch's calls are
    queued on (a host-I/O Kiln run uses its own stream: its event time is
    not meaningful and is not reported)."""
    start_ev, end_ev = events
    start = time.perf_counter()
    start_ev.record()
    fn()
    end_ev.record()
    sync()
    return (time.perf_counter() - start) * 1e3, start_ev.elapsed_time(end_ev)


def bench_model(name, batch, args, lib, out_dir):
    folder = os.path.join(out_dir, f"{name}_bs{batch}")
    os.makedirs(folder, exist_ok=True)
    onnx_path, x = export(name, batch, folder)
    model = models.build(name, batch).cuda()
    xt = torch.from_numpy(x).cuda()
    with torch.no_grad():
        want = model(xt).float().cpu().numpy()
    engines, notes, compile_s = {}, {}, {}
    sync = torch.cuda.synchronize

    for precision in ("fp32", "fp16"):
        art = os.path.join(folder, f"kiln_{precision}.so")
        compile_s[f"kiln {precision}"] = compile_kiln(args.kiln, onnx_path, art, precision)
        k = KilnModel(lib, art, want.shape)
        got = k.run(x).copy()
        notes[f"kiln {precision} host I/O"] = float(np.max(np.abs(got - want)))
        engines[f"kiln {precision} host I/O"] = (lambda k=k: k.run(x))
        out = torch.empty(want.shape, dtype=torch.float32, device="cuda")
        got = k.run_device(xt, out).cpu().numpy()
        notes[f"kiln {precision} device I/O"] = float(np.max(np.abs(got - want)))
        engines[f"kiln {precision} device I/O"] = (lambda k=k, out=out: k.run_device(xt, out))

    def torch_engine(label, m, inp):
        with torch.no_grad():
            got = m(inp).float().cpu().numpy()
        notes[label] = float(np.max(np.abs(got - want)))
        engines[label] = lambda: m(inp)

    half = models.build(name, batch).cuda().half()
    xh = xt if xt.dtype == torch.int64 else xt.half()
    with torch.no_grad():
        torch_engine("torch eager fp32", model, xt)
        torch_engine("torch eager fp16", half, xh)
        if not args.no_compile:
            for mode in ("default", "reduce-overhead"):
                label = f"torch.compile {mode} fp16"
                start = time.perf_counter()
                compiled = torch.compile(half, mode=None if mode == "default" else mode)
                for _ in range(3):
                    compiled(xh)
                sync()
                compile_s[label] = time.perf_counter() - start
                torch_engine(label, compiled, xh)
    try:
        import onnxruntime as ort
        if "CUDAExecutionProvider" in ort.get_available_providers():
            sess = ort.InferenceSession(onnx_path, providers=["CUDAExecutionProvider"])
            feed = {sess.get_inputs()[0].name: x}
            notes["onnxruntime cuda fp32"] = float(np.max(np.abs(sess.run(None, feed)[0] - want)))
            engines["onnxruntime cuda fp32"] = lambda: sess.run(None, feed)
        else:
            notes["onnxruntime"] = "no CUDAExecutionProvider in this onnxruntime (" + ort.get_device() + ")"
    except ImportError:
        notes["onnxruntime"] = "not installed"

    times = {label: [] for label in engines}
    events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
    with torch.no_grad():
        for fn in engines.values():  # warm-up
            for _ in range(5):
                fn()
        sync()
        for _ in range(args.iters):  # interleaved: one run of each engine per round
            for label, fn in engines.items():
                times[label].append(timed(fn, sync, events))
    median_ms = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
    event_ms = {k: statistics.median(e for _, e in v) for k, v in times.items() if "host I/O" not in k}
    return {"model": models.describe(name, batch), "batch": batch, "median_ms": median_ms, "event_ms": event_ms,
            "max_abs_diff_vs_torch_fp32": notes, "compile_s": compile_s}


def summary(results):
    """The issue's table: fp16 medians by CUDA events per model and batch,
    Kiln against PyTorch's modes, and Kiln over reduce-overhead (the bar:
    at most 0.8)."""
    cols = ["kiln fp16 device I/O", "torch eager fp16", "torch.compile default fp16",
            "torch.compile reduce-overhead fp16"]
    lines = ["## Summary: fp16, median ms (CUDA events)", "",
             "| model | batch | Kiln | torch eager | torch.compile | torch.compile reduce-overhead "
             "| Kiln / reduce-overhead |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results["models"].values():
        ev = r.get("event_ms", {})
        cells = [f"{ev[c]:.3f}" if c in ev else "-" for c in cols]
        ratio = f"{ev[cols[0]] / ev[cols[3]]:.2f}" if cols[0] in ev and cols[3] in ev else "-"
        name = r["model"].split(",")[0]
        lines.append(f"| {name} | {r.get('batch', 1)} | " + " | ".join(cells) + f" | {ratio} |")
    return lines + [""]


def table(results, device):
    lines = ["# GPU benchmark results", "",
             "Written by `bench/gpu/device.sh BUNDLE OUT bench " + " ".join(results["argv"]) + "` (bench/gpu/README.md); "
             "not edited by hand.", "",
             f"GPU: {device}; PyTorch {results['torch']}. Median ms per run (one batch), {results['iters']} interleaved "
             "runs per engine, timed two ways: CUDA events recorded on PyTorch's current stream around the call "
             "(`events`), and wall-clock around the call and a torch.cuda.synchronize() (`wall`); ratio = Kiln fp16 "
             "(device I/O) time / engine time, by CUDA events (below 1: Kiln is faster). "
             "`host I/O`: Kiln copies the input from and the output to host memory inside each run; `device I/O`: "
             "input and output are torch.cuda tensors, the run is queued on PyTorch's stream (kiln_session_run_with, "
             "KILN_MEMORY_DEVICE) and timed as PyTorch's calls are, up to a torch.cuda.synchronize(). PyTorch's "
             "tensors stay on the GPU.", ""]
    lines += summary(results)
    for name, r in results["models"].items():
        med = r["median_ms"]
        ev = r.get("event_ms", {})
        base = ev.get("kiln fp16 device I/O")
        lines += [f"## {r['model']}", "",
                  "| engine | median ms (events) | median ms (wall) | Kiln fp16 / engine | max abs diff vs torch fp32 |",
                  "| --- | --- | --- | --- | --- |"]
        for label, ms in med.items():
            diff = r["max_abs_diff_vs_torch_fp32"].get(label, "")
            diff = f"{diff:.2e}" if isinstance(diff, float) else diff
            e = ev.get(label)
            ratio = f"{base / e:.2f}" if e and base else "-"
            lines.append(f"| {label} | {f'{e:.3f}' if e else '-'} | {ms:.3f} | {ratio} | {diff} |")
        extra = {k: v for k, v in r["max_abs_diff_vs_torch_fp32"].items() if k not in med}
        for k, v in extra.items():
            lines.append(f"| {k} | - | - | - | {v} |")
        compile_s = ", ".join(f"{k} {v:.1f} s" for k, v in r["compile_s"].items())
        lines += ["", f"Compile times: {compile_s}.", ""]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kiln", required=True)
    p.add_argument("--runtime", required=True, help="path to libkiln_rt.so")
    p.add_argument("--out", required=True)
    p.add_argument("--models", default="resnet50,mobilenet_v2,bert_base")
    p.add_argument("--batches", default="1", help="batch sizes, comma-separated: each model is measured at each")
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (it takes minutes)")
    p.add_argument("--merge", help="results.json of an earlier run on this machine: its models come first in the "
                   "table (a long measurement split over runs)")
    args = p.parse_args()
    lib = load_runtime(args.runtime)
    device = torch.cuda.get_device_name(0)
    argv = [a for a in sys.argv[1:]]
    for flag in ("--kiln", "--runtime", "--out", "--merge"):  # paths of one machine
        if flag in argv:
            i = argv.index(flag)
            del argv[i:i + 2]
    results = {"device": device, "iters": args.iters, "torch": torch.__version__, "argv": argv, "models": {}}
    if args.merge:
        with open(args.merge) as f:
            earlier = json.load(f)
        if (earlier["device"], earlier["iters"], earlier["torch"]) != (device, args.iters, torch.__version__):
            sys.exit(f"--merge {args.merge}: measured on another GPU, PyTorch or --iters")
        results["models"] = earlier["models"]
        results["argv"] = earlier["argv"] + ["+"] + argv
    for batch in (int(b) for b in args.batches.split(",")):
        for name in args.models.split(","):
            key = f"{name}_bs{batch}"
            print(f"== {key}", flush=True)
            results["models"][key] = bench_model(name, batch, args, lib, args.out)
            print(json.dumps(results["models"][key], indent=1), flush=True)
            torch.cuda.empty_cache()
    text = table(results, device)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(text)


if __name__ == "__main__":
    main()
