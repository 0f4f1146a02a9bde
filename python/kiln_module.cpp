// `import kiln`: the runtime for Python, on NumPy arrays.
//
//   m = kiln.load("model.so", threads=0)
//   outputs = m([x])                  # or m({"image": x}), or m(x) for one input
//   outputs = m([x], return_dict=True)
//
// A sequence input is a list of arrays (each its own shape), an absent
// optional is None; a sequence output comes back as a list of arrays, an
// empty optional as None.
// Inputs that are C-contiguous, aligned NumPy arrays of the model's dtype are
// passed to the generated code without copying. Any other array (a slice, a
// transposed view, Fortran order) is copied into a C-contiguous one first;
// lists and scalars are converted to the model's dtype. An array of another
// dtype is an error, never a silent cast. Outputs are NumPy arrays over the
// memory the run allocated (no copy); NumPy frees it with kiln_free.
// The GIL is released while the model runs, so Python threads can run one
// model concurrently.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kiln_runtime.hpp"

namespace py = pybind11;

namespace {

// NumPy's name for a Kiln dtype; bfloat16 has none, so it travels as its
// 16-bit pattern (uint16).
const char* numpyName(kiln_dtype dtype) {
  switch (dtype) {
    case KILN_FLOAT32:
      return "float32";
    case KILN_UINT8:
      return "uint8";
    case KILN_INT8:
      return "int8";
    case KILN_UINT16:
      return "uint16";
    case KILN_INT16:
      return "int16";
    case KILN_INT32:
      return "int32";
    case KILN_INT64:
      return "int64";
    case KILN_BOOL:
      return "bool";
    case KILN_FLOAT16:
      return "float16";
    case KILN_FLOAT64:
      return "float64";
    case KILN_UINT32:
      return "uint32";
    case KILN_UINT64:
      return "uint64";
    case KILN_BFLOAT16:
      return "uint16";
    default:
      return nullptr;
  }
}

py::dtype numpyDtype(kiln_dtype dtype) {
  const char* name = numpyName(dtype);
  if (!name)
    throw kiln::Error(KILN_ERROR_UNSUPPORTED,
                      std::string("dtype ") + kiln_dtype_name(dtype) + " has no NumPy equivalent");
  return py::dtype(name);
}

std::string dtypeName(const py::dtype& dtype) {
  return py::str(static_cast<const py::handle&>(dtype)).cast<std::string>();
}

// A model input or output as Python sees it.
struct TensorInfo {
  std::string name;
  py::dtype dtype;
  py::tuple shape;  // ints, and str for symbolic dimensions

  static TensorInfo from(const kiln_tensor_info& info) {
    py::tuple shape(info.rank);
    for (int32_t d = 0; d < info.rank; ++d)
      shape[d] = info.dims[d] >= 0 ? py::object(py::int_(info.dims[d])) : py::object(py::str(info.dim_names[d]));
    return {info.name, numpyDtype(info.dtype), shape};
  }
  std::string repr() const {
    return "TensorInfo(name='" + name + "', dtype=" + dtypeName(dtype) +
           ", shape=" + py::repr(shape).cast<std::string>() + ")";
  }
};

std::string describeInput(size_t index, const std::string& name) {
  return "input " + std::to_string(index) + " '" + name + "'";
}

class PyModel {
 public:
  PyModel(const std::string& path, int threads) : path_(path), model_(path), threads_(threads) {
    if (threads < 0) throw kiln::Error(KILN_ERROR_INVALID_ARGUMENT, "threads must be 0 (one per core) or more");
    session_ = std::make_unique<kiln::Session>(model_, threads);
    for (size_t i = 0; i < model_.numInputs(); ++i) inputs_.push_back(TensorInfo::from(model_.input(i)));
    for (size_t i = 0; i < model_.numOutputs(); ++i) outputs_.push_back(TensorInfo::from(model_.output(i)));
  }

  const std::vector<TensorInfo>& inputs() const { return inputs_; }
  const std::vector<TensorInfo>& outputs() const { return outputs_; }
  const std::string& path() const { return path_; }
  int threads() const { return threads_; }

  py::dict metadata() const {
    py::dict out;
    for (const char* key : {"target", "cpu", "cpu_features", "cuda_arch", "producer", "model_hash", "options",
                            "content_hash", "workspace_bytes", "kernel_count"}) {
      const char* v = kiln_model_metadata(model_.get(), key);
      if (v && *v) out[key] = v;
    }
    return out;
  }

  std::vector<std::string> lastCopiedInputs() const {
    std::lock_guard lock(copies_mutex_);
    return last_copied_;
  }

  py::object run(py::object feed, bool return_dict) {
    std::vector<py::object> values = orderInputs(feed);
    // Arrays kept alive (and their pointers valid) until the run returns.
    std::vector<py::array> arrays;
    std::vector<kiln_value> inputs(values.size());
    std::vector<std::vector<kiln_tensor>> elements(values.size());
    std::vector<std::string> copied;
    for (size_t i = 0; i < values.size(); ++i) {
      kiln_value& v = inputs[i];
      v.kind = model_.inputKind(i);
      v.present = values[i].is_none() ? 0 : 1;
      bool optional = v.kind == KILN_KIND_OPTIONAL_TENSOR || v.kind == KILN_KIND_OPTIONAL_SEQUENCE;
      if (!v.present && !optional)
        throw kiln::Error(KILN_ERROR_INVALID_ARGUMENT, describeInput(i, inputs_[i].name) + " is not optional: None given");
      if (!v.present) continue;
      if (v.kind == KILN_KIND_SEQUENCE || v.kind == KILN_KIND_OPTIONAL_SEQUENCE) {
        // A sequence: a list or tuple of arrays, each with its own shape.
        if (!py::isinstance<py::list>(values[i]) && !py::isinstance<py::tuple>(values[i]))
          throw kiln::Error(KILN_ERROR_INVALID_ARGUMENT,
                            describeInput(i, inputs_[i].name) + " is a sequence: pass a list of arrays");
        size_t k = 0;
        for (auto item : values[i])
          elements[i].push_back(toTensor(i, py::reinterpret_borrow<py::object>(item), arrays, copied,
                                         " element " + std::to_string(k++)));
        v.count = elements[i].size();
        v.elements = elements[i].data();
        continue;
      }
      v.tensor = toTensor(i, values[i], arrays, copied, "");
    }
    {
      std::lock_guard lock(copies_mutex_);
      last_copied_ = copied;
    }
    std::vector<kiln_value> outputs(outputs_.size());  // data NULL: the run allocates
    {
      py::gil_scoped_release release;
      session_->runValues(inputs, outputs);
    }
    py::list results;
    for (size_t i = 0; i < outputs.size(); ++i) results.append(wrapValue(outputs[i]));
    if (!return_dict) return results;
    py::dict named;
    for (size_t i = 0; i < outputs.size(); ++i) named[py::str(outputs_[i].name)] = results[i];
    return named;
  }

  // Runs a CUDA artifact on GPU buffers: inputs and outputs are objects with
  // __cuda_array_interface__ (torch.cuda tensors, CuPy arrays), C-contiguous,
  // of the model's dtype and shape; outputs are written in place. `stream`: a
  // CUstream handle (int) or an object with .cuda_stream (torch.cuda.Stream);
  // None is the legacy default stream.
  void runDevice(const py::sequence& inputs, const py::sequence& outputs, const py::object& stream, bool async) {
    if (inputs.size() != inputs_.size() || outputs.size() != outputs_.size())
      throw kiln::Error(KILN_ERROR_INVALID_ARGUMENT, "the model takes " + std::to_string(inputs_.size()) +
                                                         " input(s) and " + std::to_string(outputs_.size()) +
                                                         " output(s); " + std::to_string(inputs.size()) + " and " +
                                                         std::to_string(outputs.size()) + " given");
    std::vector<kiln_tensor> in, out;
    for (size_t i = 0; i < inputs_.size(); ++i)
      in.push_back(deviceTensor(inputs[i], inputs_[i], model_.input(i).dtype, describeInput(i, inputs_[i].name), false));
    for (size_t i = 0; i < outputs_.size(); ++i)
      out.push_back(deviceTensor(outputs[i], outputs_[i], model_.output(i).dtype,
                                 "output " + std::to_string(i) + " '" + outputs_[i].name + "'", true));
    kiln_run_options options{};
    options.input_memory = KILN_MEMORY_DEVICE;
    options.output_memory = KILN_MEMORY_DEVICE;
    options.async = async ? 1 : 0;
    if (!stream.is_none()) {
      py::object handle = py::hasattr(stream, "cuda_stream") ? stream.attr("cuda_stream") : stream;
      options.cuda_stream = reinterpret_cast<void*>(handle.cast<uintptr_t>());
    }
    py::gil_scoped_release release;
    session_->runWith(in, out, options);
  }

  std::string repr() const {
    std::string out = "kiln.Model('" + path_ + "', inputs=[";
    for (size_t i = 0; i < inputs_.size(); ++i) out += (i ? ", " : "") + inputs_[i].repr();
    out += "], outputs=[";
    for (size_t i = 0; i < outputs_.size(); ++i) out += (i ? ", " : "") + outputs_[i].repr();
    return out + "])";
  }

 private:
  // The feed in the model's input order: a sequence, a dict by name, or one array.
  std::vector<py::object> orderInputs(py::object feed) const {
    std::vector<py::object> values;
    if (py::isinstance<py::dict>(feed)) {
      py::dict dict = feed.cast<py::dict>();
      for (auto item : dict) {
        std::string key = py::str(item.first).cast<std::string>();
        bool known = false;
        for (const TensorInfo& info : inputs_) known = known || info.name == key;
        if (!known) throw kiln::Error(KILN_ERROR_INVALID_ARGUMENT, "the model has no input named '" + key + "'");
      }
      for (size_t i = 0; i < inputs_.size(); ++i) {
        if (!dict.contains(inputs_[i].name))
          throw kiln::Error(KILN_ERROR_INVALID_ARGUMENT, "no value given for " + describeInput(i, inputs_[i].name));
        values.push_back(dict[py::str(inputs_[i].name)]);
      }
      return values;
    }
    if (py::isinstance<py::array>(feed)) {
      values.push_back(feed);
    } else if (py::isinstance<py::list>(feed) || py::isinstance<py::tuple>(feed)) {
      for (auto item : feed) values.push_back(py::reinterpret_borrow<py::object>(item));
    } else {
      throw py::type_error(
          "inputs must be a list or tuple of arrays (model order), a dict {name: array}, or one array");
    }
    if (values.size() != inputs_.size())
      throw kiln::Error(KILN_ERROR_INVALID_ARGUMENT, "the model takes " + std::to_string(inputs_.size()) +
                                                         " input(s), " + std::to_string(values.size()) + " given");
    return values;
  }

  // One array for input i (or an element of it: `what`), zero-copy when it
  // is C-contiguous and aligned; lists and scalars are converted.
  kiln_tensor toTensor(size_t i, const py::object& value, std::vector<py::array>& arrays,
                       std::vector<std::string>& copied, const std::string& what) {
    const TensorInfo& info = inputs_[i];
    std::string where = describeInput(i, info.name) + what;
    py::array array;
    if (py::isinstance<py::array>(value)) {
      array = py::reinterpret_borrow<py::array>(value);
      if (!array.dtype().is(info.dtype) && !array.dtype().equal(info.dtype))
        throw kiln::Error(KILN_ERROR_INVALID_ARGUMENT, where + ": dtype " + dtypeName(array.dtype()) +
                                                           ", the model expects " + dtypeName(info.dtype) +
                                                           " (convert with .astype(numpy." + dtypeName(info.dtype) + "))");
      constexpr int kZeroCopy =
          static_cast<int>(py::array::c_style) | static_cast<int>(py::detail::npy_api::NPY_ARRAY_ALIGNED_);
      if ((array.flags() & kZeroCopy) != kZeroCopy) {
        array = py::array::ensure(array, py::array::c_style | py::array::forcecast);
        copied.push_back(info.name);
      }
    } else {
      // Lists, tuples, scalars: converted to the model's dtype (a copy).
      py::object converted = py::module_::import("numpy").attr("ascontiguousarray")(value, info.dtype);
      array = py::reinterpret_borrow<py::array>(converted);
      copied.push_back(info.name);
    }
    if (array.ndim() > KILN_MAX_RANK)
      throw kiln::Error(KILN_ERROR_INVALID_ARGUMENT, where + ": rank " + std::to_string(array.ndim()) +
                                                         " is over the limit of " + std::to_string(KILN_MAX_RANK));
    kiln_tensor t{};
    t.dtype = model_.input(i).dtype;
    t.rank = static_cast<int32_t>(array.ndim());
    for (py::ssize_t d = 0; d < array.ndim(); ++d) t.dims[d] = array.shape(d);
    t.data = const_cast<void*>(array.data());
    t.bytes = static_cast<size_t>(array.nbytes());
    arrays.push_back(std::move(array));
    return t;
  }

  // A GPU buffer described by __cuda_array_interface__ (version 2 or 3).
  static kiln_tensor deviceTensor(const py::handle& value, const TensorInfo& info, kiln_dtype dtype,
                                  const std::string& where, bool written) {
    if (!py::hasattr(value, "__cuda_array_interface__"))
      throw kiln::Error(KILN_ERROR_INVALID_ARGUMENT,
                        where + ": not a GPU array (no __cuda_array_interface__; pass a torch.cuda tensor or a CuPy array)");
    py::dict cai = value.attr("__cuda_array_interface__");
    py::tuple shape = cai["shape"];
    std::string typestr = cai["typestr"].cast<std::string>();
    std::string want = info.dtype.attr("str").cast<std::string>();
    if (typestr != want)
      throw kiln::Error(KILN_ERROR_INVALID_ARGUMENT,
                        where + ": element type '" + typestr + "', the model expects '" + want + "' (" + dtypeName(info.dtype) + ")");
    if (shape.size() > KILN_MAX_RANK)
      throw kiln::Error(KILN_ERROR_INVALID_ARGUMENT, where + ": rank over the limit of " + std::to_string(KILN_MAX_RANK));
    kiln_tensor t{};
    t.dtype = dtype;
    t.rank = static_cast<int32_t>(shape.size());
    size_t elems = 1;
    for (size_t d = 0; d < shape.size(); ++d) elems *= static_cast<size_t>(t.dims[d] = shape[d].cast<int64_t>());
    t.bytes = elems * kiln_dtype_size(dtype);
    if (cai.contains("strides") && !cai["strides"].is_none()) {
      py::tuple strides = cai["strides"];
      int64_t expect = static_cast<int64_t>(kiln_dtype_size(dtype));
      for (size_t d = shape.size(); d-- > 0;) {
        if (t.dims[d] != 1 && strides[d].cast<int64_t>() != expect)
          throw kiln::Error(KILN_ERROR_INVALID_ARGUMENT, where + ": not C-contiguous (call .contiguous() first)");
        expect *= t.dims[d];
      }
    }
    py::tuple data = cai["data"];
    if (written && data[1].cast<bool>())
      throw kiln::Error(KILN_ERROR_INVALID_ARGUMENT, where + ": the GPU array is read-only");
    t.data = reinterpret_cast<void*>(data[0].cast<uintptr_t>());
    return t;
  }

  // A tensor as an array, a sequence as a list of arrays, an empty optional as None.
  py::object wrapValue(kiln_value& v) const {
    if (!v.present) return py::none();
    if (v.kind != KILN_KIND_SEQUENCE && v.kind != KILN_KIND_OPTIONAL_SEQUENCE) return wrapOutput(v.tensor);
    py::list items;
    for (size_t k = 0; k < v.count; ++k) items.append(wrapOutput(v.elements[k]));
    kiln_free(v.elements);  // the element data now belongs to the arrays
    v.elements = nullptr;
    return items;
  }

  py::array wrapOutput(kiln_tensor& t) const {
    std::vector<py::ssize_t> shape(t.dims, t.dims + t.rank);
    py::dtype dtype = numpyDtype(t.dtype);
    if (!t.data) return py::array(dtype, shape);  // an empty tensor
    py::capsule owner(t.data, [](void* data) { kiln_free(data); });
    t.data = nullptr;
    return py::array(dtype, shape, {}, owner.get_pointer(), owner);
  }

  std::string path_;
  kiln::Model model_;
  int threads_;
  std::unique_ptr<kiln::Session> session_;
  std::vector<TensorInfo> inputs_, outputs_;
  mutable std::mutex copies_mutex_;
  std::vector<std::string> last_copied_;
};

}  // namespace

PYBIND11_MODULE(kiln, m) {
  m.doc() = "Kiln runtime: load models compiled by `kiln compile` and run them on NumPy arrays.";
  m.attr("__version__") = KILN_PYTHON_VERSION;
  static py::exception<kiln::Error> error(m, "Error", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const kiln::Error& e) {
      error(e.what());
    }
  });

  py::class_<TensorInfo>(m, "TensorInfo", "A model input or output: name, NumPy dtype, shape (str for symbolic dims)")
      .def_readonly("name", &TensorInfo::name)
      .def_readonly("dtype", &TensorInfo::dtype)
      .def_readonly("shape", &TensorInfo::shape)
      .def("__repr__", &TensorInfo::repr);

  py::class_<PyModel>(m, "Model", "A loaded artifact with a session to run it")
      .def(py::init<const std::string&, int>(), py::arg("path"), py::arg("threads") = 0)
      .def("__call__", &PyModel::run, py::arg("inputs"), py::kw_only(), py::arg("return_dict") = false,
           "Runs the model. inputs: list/tuple in model order, dict by name, or one array. Returns a list of "
           "arrays in output order, or a dict by name with return_dict=True.")
      .def("run", &PyModel::run, py::arg("inputs"), py::kw_only(), py::arg("return_dict") = false)
      .def("run_device", &PyModel::runDevice, py::arg("inputs"), py::arg("outputs"), py::kw_only(),
           py::arg("stream") = py::none(), py::arg("async_") = false,
           "Runs a CUDA artifact on GPU arrays (anything with __cuda_array_interface__: torch.cuda tensors, CuPy "
           "arrays): inputs and outputs are lists in model order, outputs written in place. stream: a CUstream "
           "(int) or a torch.cuda.Stream, None for the legacy default stream; the run is ordered after the work "
           "queued on it. async_=True returns once the run is queued.")
      .def_property_readonly("inputs", &PyModel::inputs)
      .def_property_readonly("outputs", &PyModel::outputs)
      .def_property_readonly("input_names",
                             [](const PyModel& self) {
                               std::vector<std::string> names;
                               for (const auto& t : self.inputs()) names.push_back(t.name);
                               return names;
                             })
      .def_property_readonly("output_names",
                             [](const PyModel& self) {
                               std::vector<std::string> names;
                               for (const auto& t : self.outputs()) names.push_back(t.name);
                               return names;
                             })
      .def_property_readonly("path", &PyModel::path)
      .def_property_readonly("threads", &PyModel::threads)
      .def_property_readonly("metadata", &PyModel::metadata)
      .def_property_readonly("last_copied_inputs", &PyModel::lastCopiedInputs,
                             "names of the inputs the most recent call had to copy (not zero-copy)")
      .def("__repr__", &PyModel::repr);

  m.def(
      "load", [](const std::string& path, int threads) { return std::make_unique<PyModel>(path, threads); },
      py::arg("path"), py::arg("threads") = 0,
      "Loads an artifact (checked before any of its code runs) and creates a session with `threads` worker "
      "threads (0: one per core).");
}
