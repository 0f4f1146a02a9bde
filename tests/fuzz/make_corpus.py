#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora under OUT_DIR/<target>/, from the ONNX
backend test data and from artifacts compiled on the spot (nothing large is
kept in the repository).

    make_corpus.py OUT_DIR KILN_BINARY
"""
import glob
import os
import shutil
import subprocess
import sys

import numpy as np

DATA = "/usr/share/libonnx-testdata/data"
SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGETS = ["fuzz_onnx_import", "fuzz_onnx_infer", "fuzz_npy", "fuzz_tensor_proto", "fuzz_artifact"]


def main(out, kiln):
    shutil.rmtree(out, ignore_errors=True)
    for t in TARGETS:
        os.makedirs(os.path.join(out, t))

    # ONNX models: every backend test model (all are small), named after their case.
    models = sorted(glob.glob(f"{DATA}/*/*/model.onnx")) + [f"{SRC}/examples/tiny_cnn/tiny_cnn.onnx"]
    for model in models:
        parts = model.split("/")
        name = f"{parts[-3]}_{parts[-2]}.onnx"
        for t in ("fuzz_onnx_import", "fuzz_onnx_infer"):
            shutil.copyfile(model, os.path.join(out, t, name))

    # TensorProto files: inputs/outputs of every node case's first data set, up to 16 KiB.
    for pb in sorted(glob.glob(f"{DATA}/node/*/test_data_set_0/*.pb")):
        if os.path.getsize(pb) <= 16384:
            name = f"{pb.split('/')[-3]}_{os.path.basename(pb)}"
            shutil.copyfile(pb, os.path.join(out, "fuzz_tensor_proto", name))

    # .npy files: every dtype the reader knows, several ranks, both header versions.
    npy = os.path.join(out, "fuzz_npy")
    shutil.copyfile(f"{SRC}/examples/tiny_cnn/input.npy", os.path.join(npy, "tiny_cnn_input.npy"))
    shapes = [(), (0,), (3,), (2, 3), (1, 2, 2, 2)]
    for d in ["<f4", "<f8", "<f2", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8", "|b1"]:
        for k, s in enumerate(shapes):
            a = (np.arange(int(np.prod(s))) % 5).astype(d).reshape(s)
            np.save(os.path.join(npy, f"{d.strip('<|')}_{k}.npy"), a)
    with open(os.path.join(npy, "v2_header.npy"), "wb") as f:
        np.lib.format.write_array(f, np.ones((2, 2), "<f4"), version=(2, 0))

    # Artifacts: a few small models compiled by this checkout's kiln.
    cases = [f"{DATA}/node/{c}/model.onnx" for c in ("test_relu", "test_add", "test_matmul_2d", "test_softmax_axis_0")]
    for model in cases + [f"{SRC}/examples/tiny_cnn/tiny_cnn.onnx"]:
        name = model.split("/")[-2] if model.endswith("model.onnx") else "tiny_cnn"
        subprocess.run([kiln, "compile", model, "-o", os.path.join(out, "fuzz_artifact", name + ".so")],
                       check=True, stdout=subprocess.DEVNULL)

    for t in TARGETS:
        print(f"  seeds: {t}: {len(os.listdir(os.path.join(out, t)))} files")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
