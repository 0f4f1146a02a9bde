// Runs an ONNX model in ONNX Runtime's CPU provider (npm onnxruntime-node) on
// every sample of a stacked float32 or int64 .npy, one sample (batch 1) at a time, and
// writes the stacked first outputs as float32 .npy.
//
//   node bench/quant/ort_evaluate.js --model model.onnx --images images.npy --output out.npy [--threads N]
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, '..', 'node_modules', 'onnxruntime-node'));

function fail(message) {
  process.stderr.write(`ort_evaluate.js: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = {threads: 1};
  const names = {'--model': 'model', '--images': 'images', '--output': 'output', '--threads': 'threads'};
  for (let i = 0; i < argv.length; i += 2) {
    const key = names[argv[i]];
    if (!key || i + 1 >= argv.length) fail(`unknown or incomplete option '${argv[i]}'`);
    args[key] = key === 'threads' ? Number(argv[i + 1]) : argv[i + 1];
  }
  if (!args.model || !args.images || !args.output) fail('--model, --images and --output are required');
  return args;
}

const NPY_TYPES = {'<f4': ['float32', Float32Array], '<i8': ['int64', BigInt64Array]};

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') fail(`${file}: not a .npy file`);
  const headerLen = buf[6] === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = buf[6] === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (!NPY_TYPES[descr] || /'fortran_order':\s*True/.test(header)) fail(`${file}: expected C-order float32 or int64`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').filter((s) => s.trim()).map(Number);
  const bytes = buf.subarray(start + headerLen);
  const [type, Array] = NPY_TYPES[descr];
  return {type, shape, data: new Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length))};
}

function writeNpyFloat32(file, data, shape) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(data.buffer)]));
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const session = await ort.InferenceSession.create(args.model, {
    executionProviders: ['cpu'], intraOpNumThreads: args.threads, interOpNumThreads: 1,
    executionMode: 'sequential', graphOptimizationLevel: 'all'});
  const images = readNpy(args.images);
  const n = images.shape[0];
  const sampleShape = [1, ...images.shape.slice(1)];
  const sampleSize = images.data.length / n;
  const outputs = [];
  let outShape = null;
  for (let i = 0; i < n; ++i) {
    const x = new ort.Tensor(images.type, images.data.slice(i * sampleSize, (i + 1) * sampleSize), sampleShape);
    const result = await session.run({[session.inputNames[0]]: x});
    const y = result[session.outputNames[0]];
    if (y.type !== 'float32') fail(`output dtype ${y.type}: expected float32`);
    outShape = y.dims;
    outputs.push(y.data);
  }
  const all = new Float32Array(outputs.reduce((s, o) => s + o.length, 0));
  outputs.reduce((offset, o) => (all.set(o, offset), offset + o.length), 0);
  writeNpyFloat32(args.output, all, [n * outShape[0], ...outShape.slice(1)]);
}

main().catch((e) => fail(e.message.split('\n')[0]));
