"""Runs a Kiln artifact on every image of a stacked validation file, one sample
(batch 1) at a time, and saves the stacked outputs.

    /usr/bin/python3 bench/quant/evaluate.py --kiln KILN --artifact model.so \
        --images validation_images.npy --out logits.npy [--threads N]

Uses the `kiln` Python module when it was built beside the CLI
(BUILD/python, found from KILN = BUILD/bin/kiln): one load, then a run per
sample. Without it (or when it cannot load the artifact), one `kiln run` per
sample: slower, the same numbers.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np


def with_binding(kiln_cli, artifact, images, threads):
    module_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(kiln_cli))), "python")
    if not os.path.isdir(module_dir):
        return None
    sys.path.insert(0, module_dir)
    try:
        import kiln
    except ImportError:
        return None
    try:
        model = kiln.Model(artifact, threads)
    except kiln.Error as e:  # e.g. a module from an older build than the CLI
        print(f"evaluate.py: the kiln Python module in {module_dir} cannot load the artifact ({e})", file=sys.stderr)
        return None
    return np.concatenate([model([image[None]])[0] for image in images])


def with_cli(kiln_cli, artifact, images, threads):
    outputs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, image in enumerate(images):
            path = os.path.join(tmp, "image.npy")
            np.save(path, image[None])
            subprocess.run([kiln_cli, "run", artifact, "--input", path, "--threads", str(threads), "--output-dir",
                            os.path.join(tmp, "out")], check=True, stdout=subprocess.DEVNULL)
            outputs.append(np.load(os.path.join(tmp, "out", "output_0.npy")))
    return np.concatenate(outputs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kiln", required=True)
    parser.add_argument("--artifact", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    images = np.load(args.images)
    logits = with_binding(args.kiln, args.artifact, images, args.threads)
    if logits is None:
        print("evaluate.py: no kiln Python module beside the CLI; one `kiln run` per sample", file=sys.stderr)
        logits = with_cli(args.kiln, args.artifact, images, args.threads)
    np.save(args.out, logits.astype(np.float32))


if __name__ == "__main__":
    main()
