#!/usr/bin/env node
// The cuda collectives of tensor parallelism (libs/native/src/cuda/collective_cuda.cu) through the addon's
// runCollective harness, on fresh random inputs, against serial references computed here (plain JS for the device
// machine): all-reduce f32 and f16 (the f16 reference: f16 inputs summed in f32 in rank order, rounded once) and
// all-gather of [rows, cols] blocks. The same-GPU device collective and the NVLink peer exchange (rank order too)
// must match bit for bit; NCCL (another summation order) within 1e-5 relative (f32) / 2 f16 ulps (f16).
// Across GPUs the path follows LMFLEET_TP_P2P: unset, the peer exchange up to its 4 MiB buffer and NCCL above;
// "all", the peer exchange for every size (messages above 4 MiB in chunks); "0", NCCL only.
// Env LMFLEET_TP_FUSE_ROWS (the fused kernel's row limit, default 16) is read here too.
//   node test/bench/tp-collective-check.js ADDON.node --devices 0,0[,0,0] [--seed N] [--time 0] [--flush-mb 64]
// Prints a table; exit 1 on any mismatch.
'use strict';
const path = require('node:path');

const [addonPath, ...rest] = process.argv.slice(2);
const opt = { devices: '0,0', seed: String(Date.now() % 100000) };
for (let i = 0; i + 1 < rest.length; i += 2) opt[rest[i].replace(/^--/, '')] = rest[i + 1];
const devices = opt.devices.split(',').map(Number);
const n = devices.length;
const sameGpu = devices.every((d) => d === devices[0]);
const p2p = process.env.LMFLEET_TP_P2P ?? '';
const pathOf = (bytes) => (sameGpu ? 'device' : p2p === '0' ? 'nccl' : p2p === 'all' || bytes <= 4 << 20 ? 'peer' : 'nccl');
let seed = Number(opt.seed) >>> 0;
function rand() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
function f16round(x) {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  if (a >= 65520) return Math.sign(x) * Infinity;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (Math.max(e, -14) - 10);
  const q = a / ulp, f = Math.floor(q), d = q - f;
  const r = d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
  return Math.sign(x) * r * ulp;
}

const addon = require(path.resolve(addonPath));
const rows = [];
let failures = 0;
function check(name, outs, want, tol, bytes) {
  let worst = 0;
  for (let r = 0; r < n; r++)
    for (let i = 0; i < want.length; i++) {
      const d = Math.abs(outs[r][i] - want[i]);
      worst = Math.max(worst, tol(want[i]) === 0 ? (d === 0 ? 0 : Infinity) : d / tol(want[i]));
    }
  const ok = worst <= 1;
  if (!ok) failures++;
  rows.push(`| ${name} | ${n} | ${opt.devices} (${pathOf(bytes)}) | ${worst === 0 ? 'bit-exact' : worst.toExponential(2)} | ${ok ? 'PASS' : 'FAIL'} |`);
}

// 4096 * 300 (+ 3): above the peer buffer, in f32 (two chunks; aligned, then not)
for (const count of [1, 7, 4096, 4096 * 33 + 5, 4096 * 300, 4096 * 300 + 3]) {
  const exact = (bytes) => sameGpu || pathOf(bytes) === 'peer';
  const inputs = Array.from({ length: n }, () => Float32Array.from({ length: count }, () => (rand() * 2 - 1) * 4));
  const want = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    let s = inputs[0][i];
    for (let r = 1; r < n; r++) s = Math.fround(s + inputs[r][i]);
    want[i] = s;
  }
  check(`all_reduce_sum f32 x${count}`, addon.runCollective({ op: 'all_reduce_sum', inputs, backend: 'cuda', devices, repeat: 3 }), want,
    (w) => (exact(count * 4) ? 0 : 1e-5 * Math.max(1, Math.abs(w))), count * 4);
  const want16 = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    let s = f16round(inputs[0][i]);
    for (let r = 1; r < n; r++) s = Math.fround(s + f16round(inputs[r][i]));
    want16[i] = f16round(s);
  }
  check(`all_reduce_sum f16 x${count}`, addon.runCollective({ op: 'all_reduce_sum_f16', inputs, backend: 'cuda', devices, repeat: 3 }), want16,
    (w) => (exact(count * 2) ? 0 : 2 * 2 ** (Math.max(Math.floor(Math.log2(Math.max(Math.abs(w), 1e-4))), -14) - 10)), count * 2);
}
// [64, 16000]: tp 2's batch-64 logits (4 MB per rank, the peer path, several loads per thread); [5, 70001]: a count
// that leaves the blocks' last loads partial
for (const [r0, c0] of [[1, 5], [3, 8], [7, 1000], [64, 16000], [5, 70001], [1, 4096 * 300], [3, 4096 * 100 + 1]]) {
  const inputs = Array.from({ length: n }, () => Float32Array.from({ length: r0 * c0 }, () => rand()));
  const want = new Float32Array(r0 * c0 * n);
  for (let r = 0; r < n; r++)
    for (let i = 0; i < r0; i++)
      for (let c = 0; c < c0; c++) want[i * c0 * n + r * c0 + c] = inputs[r][i * c0 + c];
  check(`all_gather [${r0}, ${c0}]`, addon.runCollective({ op: 'all_gather', inputs, rows: r0, backend: 'cuda', devices, repeat: 2 }), want, () => 0, r0 * c0 * 4 * n);
}
// NCCL alone: a rank that never joins leaves the others' kernels waiting until ncclCommAbort; not run here. The peer
// exchange's waiting blocks give up when the failing rank's abort() sets the host flag.
const failTest = sameGpu || pathOf(64) === 'peer';
let aborted = !failTest;
if (failTest) try {
  addon.runCollective({ op: 'all_reduce_sum', inputs: Array.from({ length: n }, () => new Float32Array(16)), backend: 'cuda', devices, failRank: n - 1 });
} catch (e) {
  aborted = /failed on purpose/.test(String(e.message));
}
rows.push(`| a failing rank does not hang the others | ${n} | ${opt.devices} | - | ${failTest ? (aborted ? 'PASS' : 'FAIL') : 'not run (nccl)'} |`);
if (!aborted) failures++;
// The fused all-reduce + residual add + rms_norm (the peer exchange's; other collectives decline it): residual
// bit-exact (f16 inputs summed in f32 in rank order, rounded, added to the f16 residual and rounded), y within 2 f16
// ulps (the sum of squares is added in another order here). Up to 16 rows it runs on the 32-block set; above, up to
// LMFLEET_TP_FUSE_ROWS (default 64, 16 with LMFLEET_TP_AR_PUSH=0) one block per row; widths that are not a multiple
// of 8 are declined.
const fuseRows = Number(process.env.LMFLEET_TP_FUSE_ROWS || (process.env.LMFLEET_TP_AR_PUSH === '0' ? 16 : 64));
for (const [rowsF, colsF] of [[1, 4096], [3, 1000], [16, 4096], [17, 4096], [64, 4096], [2, 1001]]) {
  const count = rowsF * colsF;
  const xs = Array.from({ length: n }, () => Float32Array.from({ length: count }, () => (rand() * 2 - 1) * 2));
  const residual = Float32Array.from({ length: count }, () => (rand() * 2 - 1) * 4);
  const weight = Float32Array.from({ length: colsF }, () => 0.5 + rand());
  const expectTaken = !sameGpu && p2p !== '0' && colsF % 8 === 0 && (rowsF <= 16 || rowsF <= fuseRows);
  const res = addon.runCollective({ op: 'all_reduce_add_rms_norm_f16', inputs: xs, residual, weight, rows: rowsF, eps: 1e-5, backend: 'cuda', devices, repeat: 3 });
  const name = `all_reduce + add + rms_norm f16 [${rowsF}, ${colsF}]`;
  if (!res.fused) {
    const ok = !expectTaken;
    if (!ok) failures++;
    rows.push(`| ${name} | ${n} | ${opt.devices} | declined (two kernels) | ${ok ? 'PASS' : 'FAIL (expected the fused kernel)'} |`);
    continue;
  }
  const wantRes = new Float32Array(count), wantY = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    let s = f16round(xs[0][i]);
    for (let r = 1; r < n; r++) s = Math.fround(s + f16round(xs[r][i]));
    wantRes[i] = f16round(f16round(residual[i]) + f16round(s));
  }
  for (let rr = 0; rr < rowsF; rr++) {
    let ss = 0;
    for (let c = 0; c < colsF; c++) ss += wantRes[rr * colsF + c] ** 2;
    const inv = 1 / Math.sqrt(ss / colsF + 1e-5);
    for (let c = 0; c < colsF; c++) wantY[rr * colsF + c] = f16round(wantRes[rr * colsF + c] * inv * f16round(weight[c]));
  }
  let worstRes = 0, worstY = 0;
  for (let r = 0; r < n; r++)
    for (let i = 0; i < count; i++) {
      if (res.residual[r][i] !== wantRes[i]) worstRes = Infinity;
      const ulp = 2 ** (Math.max(Math.floor(Math.log2(Math.max(Math.abs(wantY[i]), 1e-4))), -14) - 10);
      worstY = Math.max(worstY, Math.abs(res.y[r][i] - wantY[i]) / (2 * ulp));
    }
  const ok = worstRes === 0 && worstY <= 1;
  if (!ok) failures++;
  rows.push(`| ${name} | ${n} | ${opt.devices} (fused) | residual ${worstRes === 0 ? 'bit-exact' : 'DIFFERS'}, y ${worstY.toExponential(2)} | ${ok ? 'PASS' : 'FAIL'} |`);
}

// Across GPUs: the time of one f16 all-reduce of a decode step's [rows, 4096] (the 7B hidden width), 64 in a row as
// in one step's layers, captured into a CUDA graph where the collective allows it (else eager) — the cost that
// tensor parallelism adds per exchange. Fused: with the residual add + rms_norm (up to 16 rows).
if (!sameGpu && opt.time !== '0') {
  // LMFLEET_TP_PDL=1: every exchange kernel a programmatic dependent; =0 none; unset the LL kernel only
  const pdlTag = process.env.LMFLEET_TP_PDL === '1' ? ', PDL' : process.env.LMFLEET_TP_PDL === '0' ? ', no PDL' : '';
  for (const rowsT of [1, 16, 64])
    for (const fused of rowsT <= Math.max(16, fuseRows) ? [false, true] : [false]) {
      const t = addon.runCollective({ op: 'time_all_reduce_f16', backend: 'cuda', devices, rows: rowsT, cols: 4096, calls: 64, reps: 20, fused });
      rows.push(`| time: all_reduce f16 [${rowsT}, 4096]${t.fused ? ' + add + rms_norm' : ''}, 64 in ${t.graphed ? 'a graph' : 'eager'}${pdlTag} | ${n} | ${opt.devices} (${pathOf(rowsT * 4096 * 2)}) | ${t.usPerCall.toFixed(2)} us per call | - |`);
    }
  // The same with a streaming read of --flush-mb MB (default 64, more than the L2) before each exchange, as a decode
  // GEMV streams its weights between two exchanges: the exchange's small loads (its counters, the residual, the norm
  // weight) then miss L2 as in a decode step. The exchange's share is the difference to the reads alone.
  const flushMb = Number(opt['flush-mb'] ?? 64);
  if (flushMb > 0)
    for (const rowsT of [1, 64]) {
      const t = addon.runCollective({ op: 'time_all_reduce_f16', backend: 'cuda', devices, rows: rowsT, cols: 4096, calls: 64, reps: 20, fused: true, flushMb });
      rows.push(`| time: ${flushMb} MB read + all_reduce f16 [${rowsT}, 4096]${t.fused ? ' + add + rms_norm' : ''}, 64 in ${t.graphed ? 'a graph' : 'eager'}${pdlTag} | ${n} | ${opt.devices} | ${t.usPerCall.toFixed(2)} us per call, the read alone ${t.flushUs.toFixed(2)}: exchange ${(t.usPerCall - t.flushUs).toFixed(2)} | - |`);
    }
}
console.log(`seed ${opt.seed}`);
console.log('| case | ranks | devices | worst err / tolerance | result |');
console.log('| --- | --- | --- | --- | --- |');
for (const r of rows) console.log(r);
if (failures) process.exit(1);
