// Times an ONNX model in ONNX Runtime's CPU provider (npm onnxruntime-node),
// with the same warm-up and iteration rule as `kiln bench` and torch_bench.py.
//
//   node bench/ort_bench.js --model model.onnx --input input.npy [--threads N] [--iters N]
//        [--warmup N] [--max-time S] [--output FILE.npy]
//
// Prints one JSON object (median_ms, p90_ms, min_ms, iters, threads, ...).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));

function parseArgs(argv) {
  const args = {threads: os.cpus().length, iters: 50, warmup: 10, maxTime: 0};
  const names = {'--model': 'model', '--input': 'input', '--threads': 'threads', '--iters': 'iters',
                 '--warmup': 'warmup', '--max-time': 'maxTime', '--output': 'output'};
  for (let i = 0; i < argv.length; i += 2) {
    const key = names[argv[i]];
    if (!key || i + 1 >= argv.length) fail(`unknown or incomplete option '${argv[i]}'`);
    args[key] = ['model', 'input', 'output'].includes(key) ? argv[i + 1] : Number(argv[i + 1]);
  }
  if (!args.model || !args.input) fail('--model and --input are required');
  if (!(args.threads >= 1 && args.iters >= 1 && args.warmup >= 0)) fail('--threads and --iters must be positive');
  return args;
}

function fail(message) {
  process.stderr.write(`ort_bench.js: ${message}\n`);
  process.exit(2);
}

const NPY_TYPES = {'<f4': ['float32', Float32Array], '<i8': ['int64', BigInt64Array], '<i4': ['int32', Int32Array]};

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') fail(`${file}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').filter((s) => s.trim()).map(Number);
  if (/'fortran_order':\s*True/.test(header)) fail(`${file}: Fortran-order arrays are not supported`);
  if (!NPY_TYPES[descr]) fail(`${file}: dtype ${descr} is not supported`);
  const [type, Array] = NPY_TYPES[descr];
  const offset = start + headerLen;
  const bytes = buf.subarray(offset);
  const data = new Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  return new ort.Tensor(type, data, shape);
}

function writeNpy(file, tensor) {
  if (tensor.type !== 'float32') fail(`output dtype ${tensor.type}: only float32 outputs are written`);
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${tensor.dims.join(', ')}${tensor.dims.length === 1 ? ',' : ''}), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const data = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'), data]));
}

function summarize(times) {
  const s = [...times].sort((a, b) => a - b);
  const n = s.length;
  const sum = s.reduce((a, b) => a + b, 0);
  return {iters: n, median_ms: n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2,
          p90_ms: s[Math.ceil(0.9 * n) - 1], min_ms: s[0], mean_ms: sum / n, throughput_per_s: 1000 * n / sum};
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const session = await ort.InferenceSession.create(args.model, {
    executionProviders: ['cpu'], intraOpNumThreads: args.threads, interOpNumThreads: 1,
    executionMode: 'sequential', graphOptimizationLevel: 'all'});
  const feeds = {[session.inputNames[0]]: readNpy(args.input)};
  const now = () => Number(process.hrtime.bigint()) / 1e6;
  // Warm-up: `warmup` runs or maxTime/5 seconds; then `iters` timed runs or maxTime seconds (at least one).
  let start = now();
  let result;
  for (let i = 0; i < args.warmup; ++i) {
    result = await session.run(feeds);
    if (args.maxTime && now() - start >= args.maxTime * 200) break;
  }
  const times = [];
  start = now();
  for (let i = 0; i < args.iters; ++i) {
    const t0 = now();
    result = await session.run(feeds);
    const t1 = now();
    times.push(t1 - t0);
    if (args.maxTime && t1 - start >= args.maxTime * 1000) break;
  }
  if (args.output) writeNpy(args.output, result[session.outputNames[0]]);
  const version = require(path.join(__dirname, 'node_modules', 'onnxruntime-node', 'package.json')).version;
  console.log(JSON.stringify({engine: 'onnxruntime', version, threads: args.threads, ...summarize(times)}));
}

main().catch((e) => fail(e.message.split('\n')[0]));
