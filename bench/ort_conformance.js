// Runs ONNX backend test cases through ONNX Runtime (onnxruntime-node) for
// bench/ort_conformance.py, which prepares the inputs and judges the outputs.
//   node bench/ort_conformance.js PLAN.json
// PLAN.json: [{case, model, sets: [{dir, inputs: [{name, type, dims, file}]}]}]
// For every set it writes DIR/outputs.json ([{name, type, dims, file}], raw
// little-endian data in the files) or DIR/error.txt with ONNX Runtime's error.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));

const ARRAYS = {
  float32: Float32Array, float64: Float64Array, float16: Uint16Array, int8: Int8Array, uint8: Uint8Array,
  int16: Int16Array, uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array, int64: BigInt64Array,
  uint64: BigUint64Array, bool: Uint8Array,
};

function readTensor(spec) {
  if (spec.type === 'string') return new ort.Tensor('string', JSON.parse(fs.readFileSync(spec.file, 'utf8')), spec.dims);
  const Array = ARRAYS[spec.type];
  if (!Array) throw new Error(`dtype ${spec.type} has no onnxruntime-node tensor type`);
  const bytes = fs.readFileSync(spec.file);
  const data = new Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  return new ort.Tensor(spec.type, data, spec.dims);
}

function writeTensor(dir, index, name, tensor) {
  const file = path.join(dir, `out_${index}.bin`);
  if (tensor.type === 'string') fs.writeFileSync(file, JSON.stringify(tensor.data));
  else fs.writeFileSync(file, Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength));
  return {name, type: tensor.type, dims: Array.from(tensor.dims), file};
}

async function main() {
  const plan = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  for (const c of plan) {
    let session = null;
    try {
      session = await ort.InferenceSession.create(c.model, {intraOpNumThreads: 1, graphOptimizationLevel: 'all'});
    } catch (e) {
      for (const set of c.sets) fs.writeFileSync(path.join(set.dir, 'error.txt'), `load: ${e.message.split('\n')[0]}`);
      continue;
    }
    for (const set of c.sets) {
      try {
        const feeds = {};
        for (const spec of set.inputs) feeds[spec.name] = readTensor(spec);
        const results = await session.run(feeds);
        const outputs = session.outputNames.map((name, i) => writeTensor(set.dir, i, name, results[name]));
        fs.writeFileSync(path.join(set.dir, 'outputs.json'), JSON.stringify(outputs));
      } catch (e) {
        fs.writeFileSync(path.join(set.dir, 'error.txt'), `run: ${e.message.split('\n')[0]}`);
      }
    }
  }
  const version = require(path.join(__dirname, 'node_modules', 'onnxruntime-node', 'package.json')).version;
  console.log(version);
}

main().catch((e) => {
  process.stderr.write(`ort_conformance.js: ${e.message}\n`);
  process.exit(2);
});
