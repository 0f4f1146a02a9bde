"""The `kiln` Python module: loading, running on NumPy arrays, metadata,
errors, zero-copy inputs and threads, checked against `kiln run` and the ONNX
backend test data's expected outputs.

Environment: PYTHONPATH holds the built module; KILN is the kiln CLI;
KILN_SOURCE_DIR the repository. In the ASan build this process starts with
the sanitizer runtime in LD_PRELOAD (tests/python/CMakeLists.txt).
"""
import os
import subprocess
import sys
import tempfile
import threading
import unittest

# The preload is for this process (Debian's python3 loading the instrumented
# module); the kiln CLI it starts carries its own sanitizer runtime, which
# refuses to run beside a second one.
os.environ.pop("LD_PRELOAD", None)

try:
    import numpy as np
except ImportError:
    print("SKIP: NumPy is not installed for", sys.executable)
    sys.exit(77)

import kiln

KILN = os.environ["KILN"]
SRC = os.environ["KILN_SOURCE_DIR"]
TINY = os.path.join(SRC, "examples/tiny_cnn")
NODE = "/usr/share/libonnx-testdata/data/node"


def read_pb(path):
    """An ONNX TensorProto file as a NumPy array, through the onnx package when present."""
    from onnx import TensorProto, numpy_helper
    t = TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


class BindingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.artifact = os.path.join(cls.tmp.name, "tiny_cnn.so")
        subprocess.run([KILN, "compile", "-q", os.path.join(TINY, "tiny_cnn.onnx"), "-o", cls.artifact], check=True)
        cls.x = np.load(os.path.join(TINY, "input.npy"))
        out_dir = os.path.join(cls.tmp.name, "out")
        subprocess.run([KILN, "run", cls.artifact, "--input", os.path.join(TINY, "input.npy"),
                        "--output-dir", out_dir], check=True, stdout=subprocess.DEVNULL)
        cls.want = np.load(os.path.join(out_dir, "output_0.npy"))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_matches_kiln_run(self):
        m = kiln.load(self.artifact)
        outputs = m([self.x])
        self.assertIsInstance(outputs, list)
        self.assertEqual(len(outputs), 1)
        self.assertEqual(outputs[0].dtype, np.float32)
        self.assertEqual(outputs[0].shape, self.want.shape)
        np.testing.assert_allclose(outputs[0], self.want, rtol=1e-6, atol=1e-7)

    def test_feeds_and_return_dict(self):
        m = kiln.load(self.artifact)
        name = m.input_names[0]
        by_dict = m({name: self.x}, return_dict=True)
        self.assertEqual(list(by_dict), m.output_names)
        single = m(self.x)[0]
        np.testing.assert_array_equal(by_dict[m.output_names[0]], single)
        np.testing.assert_array_equal(m.run((self.x,))[0], single)

    def test_properties(self):
        m = kiln.load(self.artifact, threads=1)
        self.assertEqual(m.input_names, ["image"])
        self.assertEqual(m.output_names, ["probabilities"])
        self.assertEqual(m.inputs[0].dtype, np.dtype("float32"))
        self.assertEqual(m.inputs[0].shape, (1, 3, 32, 32))
        self.assertEqual(m.outputs[0].shape, (1, 10))
        self.assertEqual(m.threads, 1)
        self.assertEqual(m.metadata["target"], "cpu")
        self.assertIn("tiny_cnn.so", repr(m))

    def test_matches_onnx_expected_outputs(self):
        case = os.path.join(NODE, "test_conv_with_strides_padding")
        if not os.path.isdir(case):
            self.skipTest("libonnx-testdata is not installed")
        try:
            import onnx  # noqa: F401
        except ImportError:
            self.skipTest("python3-onnx is not installed")
        artifact = os.path.join(self.tmp.name, "conv.so")
        subprocess.run([KILN, "compile", "-q", os.path.join(case, "model.onnx"), "-o", artifact], check=True)
        data = os.path.join(case, "test_data_set_0")
        x, w = read_pb(os.path.join(data, "input_0.pb")), read_pb(os.path.join(data, "input_1.pb"))
        want = read_pb(os.path.join(data, "output_0.pb"))
        m = kiln.load(artifact)
        (got,) = m([x, w])
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
        (got_named,) = m({"W": w, "x": x})
        np.testing.assert_array_equal(got_named, got)

    def test_zero_copy_and_copies(self):
        m = kiln.load(self.artifact)
        want = m([self.x])[0]
        self.assertEqual(m.last_copied_inputs, [])
        # A Fortran-ordered copy and a strided view are copied, and give the same result.
        fortran = np.asfortranarray(self.x)
        np.testing.assert_array_equal(m([fortran])[0], want)
        self.assertEqual(m.last_copied_inputs, ["image"])
        wide = np.zeros((1, 3, 32, 64), dtype=np.float32)
        wide[..., ::2] = self.x
        view = wide[..., ::2]
        self.assertFalse(view.flags.c_contiguous)
        np.testing.assert_array_equal(m([view])[0], want)
        self.assertEqual(m.last_copied_inputs, ["image"])
        # Nested lists are converted to the model's dtype.
        np.testing.assert_allclose(m([self.x.tolist()])[0], want, rtol=1e-6)
        self.assertEqual(m.last_copied_inputs, ["image"])
        # Outputs own their memory: they survive the model.
        out = kiln.load(self.artifact)([self.x])[0]
        self.assertTrue(out.flags.c_contiguous)
        np.testing.assert_array_equal(out, want)

    def test_zero_copy_reads_the_callers_buffer(self):
        # The run sees the array's memory itself: changing it changes the result.
        m = kiln.load(self.artifact)
        x = self.x.copy()
        first = m([x])[0]
        x *= 0
        second = m([x])[0]
        self.assertEqual(m.last_copied_inputs, [])
        self.assertFalse(np.array_equal(first, second))

    def test_wrong_shape(self):
        m = kiln.load(self.artifact)
        with self.assertRaises(kiln.Error) as ctx:
            m([np.zeros((1, 3, 16, 16), dtype=np.float32)])
        self.assertIn("image", str(ctx.exception))
        self.assertIn("shape", str(ctx.exception))

    def test_wrong_dtype(self):
        m = kiln.load(self.artifact)
        with self.assertRaises(kiln.Error) as ctx:
            m([self.x.astype(np.float64)])
        msg = str(ctx.exception)
        self.assertIn("float64", msg)
        self.assertIn("float32", msg)
        self.assertIn("'image'", msg)

    def test_wrong_feed(self):
        m = kiln.load(self.artifact)
        with self.assertRaisesRegex(kiln.Error, "takes 1 input"):
            m([self.x, self.x])
        with self.assertRaisesRegex(kiln.Error, "no input named 'nope'"):
            m({"nope": self.x})
        with self.assertRaises(TypeError):
            m(42)
        self.assertTrue(issubclass(kiln.Error, RuntimeError))

    def test_run_device_refused_on_cpu_artifact(self):
        class FakeGpuArray:  # describes host memory; the CPU artifact must refuse before reading it
            def __init__(self, a):
                self.a = a
                self.__cuda_array_interface__ = {"shape": a.shape, "typestr": a.dtype.str, "strides": None,
                                                 "data": (a.ctypes.data, False), "version": 3}
        m = kiln.load(self.artifact)
        out = np.zeros(self.want.shape, dtype=np.float32)
        with self.assertRaisesRegex(kiln.Error, "device memory needs a CUDA artifact; this one targets cpu"):
            m.run_device([FakeGpuArray(self.x)], [FakeGpuArray(out)])
        self.assertFalse(out.any(), "the refused run wrote its output")
        with self.assertRaisesRegex(kiln.Error, "input 0 'image': not a GPU array"):
            m.run_device([self.x], [FakeGpuArray(out)])
        with self.assertRaisesRegex(kiln.Error, "element type '<f8'"):
            m.run_device([FakeGpuArray(self.x.astype(np.float64))], [FakeGpuArray(out)])

    def test_load_errors(self):
        with self.assertRaisesRegex(kiln.Error, "missing.so"):
            kiln.load(os.path.join(self.tmp.name, "missing.so"))
        bad = os.path.join(self.tmp.name, "bad.so")
        with open(bad, "wb") as f:
            f.write(b"\x7fELF not really")
        with self.assertRaisesRegex(kiln.Error, "bad.so"):
            kiln.load(bad)
        with self.assertRaises(kiln.Error):
            kiln.load(self.artifact, threads=-1)

    def test_threads(self):
        want = kiln.load(self.artifact, threads=1)([self.x])[0]
        m = kiln.load(self.artifact, threads=2)
        np.testing.assert_array_equal(m([self.x])[0], want)
        # One model run from several Python threads at once (the GIL is released while running).
        inputs = [self.x * (i + 1) for i in range(4)]
        expected = [kiln.load(self.artifact, threads=1)([x])[0] for x in inputs]
        results = [None] * len(inputs)
        errors = []

        def work(i):
            try:
                for _ in range(20):
                    results[i] = m([inputs[i]])[0]
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        for got, exp in zip(results, expected):
            np.testing.assert_array_equal(got, exp)


class RunTimeShapeTest(unittest.TestCase):
    """One artifact with a symbolic batch dim, run at several batch sizes."""

    def test_symbolic_batch(self):
        try:
            import onnx
        except ImportError:
            self.skipTest("the onnx package is not installed (needed to write the model)")
        with tempfile.TemporaryDirectory() as tmp:
            model = onnx.load(os.path.join(TINY, "tiny_cnn.onnx"))
            for v in (model.graph.input[0], model.graph.output[0]):
                v.type.tensor_type.shape.dim[0].dim_param = "N"
            path = os.path.join(tmp, "batch.onnx")
            onnx.save(model, path)
            artifact = os.path.join(tmp, "batch.so")
            subprocess.run([KILN, "compile", "-q", path, "-o", artifact], check=True)
            m = kiln.load(artifact)
            self.assertEqual(m.inputs[0].shape, ("N", 3, 32, 32))
            self.assertEqual(m.outputs[0].shape, ("N", 10))
            x = np.random.RandomState(1).rand(4, 3, 32, 32).astype(np.float32)
            (all4,) = m([x])
            self.assertEqual(all4.shape, (4, 10))
            for n in (1, 2):
                (part,) = m([x[:n]])
                self.assertEqual(part.shape, (n, 10))
                np.testing.assert_allclose(part, all4[:n], rtol=1e-5, atol=1e-6)
            with self.assertRaises(kiln.Error):
                m([x[:, :2]])  # the static channel dim must still match


class ContainerTest(unittest.TestCase):
    """Sequences as lists, empty optionals as None."""

    def compile(self, tmp, model):
        import onnx
        path = os.path.join(tmp, "model.onnx")
        onnx.save(model, path)
        artifact = os.path.join(tmp, "model.so")
        subprocess.run([KILN, "compile", "-q", path, "-o", artifact], check=True)
        return kiln.load(artifact)

    def test_sequence_in_and_out(self):
        try:
            from onnx import TensorProto, helper
        except ImportError:
            self.skipTest("the onnx package is not installed (needed to write the model)")
        seq = helper.make_tensor_sequence_value_info
        graph = helper.make_graph(
            [helper.make_node("SequenceInsert", ["s", "t"], ["out"]),
             helper.make_node("SequenceLength", ["out"], ["n"])],
            "g", [seq("s", TensorProto.FLOAT, None), helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])],
            [seq("out", TensorProto.FLOAT, None), helper.make_tensor_value_info("n", TensorProto.INT64, [])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
        with tempfile.TemporaryDirectory() as tmp:
            m = self.compile(tmp, model)
            t = np.array([5, 6], dtype=np.float32)
            for elements in ([], [np.ones((2, 3), np.float32)], [np.zeros(1, np.float32), np.arange(4, dtype=np.float32)]):
                out, n = m([elements, t])
                self.assertIsInstance(out, list)
                self.assertEqual(len(out), len(elements) + 1)
                self.assertEqual(int(n), len(elements) + 1)
                for got, want in zip(out, elements + [t]):
                    np.testing.assert_array_equal(got, want)
            with self.assertRaises(kiln.Error):
                m([np.ones(2, np.float32), t])  # a sequence input takes a list

    def test_empty_optional_is_none(self):
        try:
            from onnx import TensorProto, helper
        except ImportError:
            self.skipTest("the onnx package is not installed (needed to write the model)")
        opt = helper.make_optional_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [3]))
        graph = helper.make_graph(
            [helper.make_node("OptionalHasElement", ["x"], ["has"])], "g", [helper.make_value_info("x", opt)],
            [helper.make_tensor_value_info("has", TensorProto.BOOL, [])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
        with tempfile.TemporaryDirectory() as tmp:
            m = self.compile(tmp, model)
            self.assertFalse(bool(m([None])[0]))
            self.assertTrue(bool(m([np.ones(3, np.float32)])[0]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
