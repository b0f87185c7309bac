#!/usr/bin/env node
// Builds the native addon with cmake-js, one folder per variant (node-llama-cpp's layout):
//   libs/native/build/cpu/Release/lmfleet_native.node   always, offline (Node's own headers)
//   libs/native/build/cuda/Release/lmfleet_native.node  when nvcc AND cuBLAS are found
// Env: LMFLEET_CUDA=0 skips CUDA; LMFLEET_NATIVE_ARCH=0 builds portable code (no -march=native);
//      LMFLEET_BUILD_JOBS sets parallelism (default: cores).
// Without cuBLAS but with nvcc, src/ops/*.cu are still compile-checked (nvcc -c, sm_80 + sm_90).
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const nativeDir = path.resolve(__dirname, '..');
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const addonApiDir = require('node-addon-api').include.replace(/"/g, '');
const jobs = Number(process.env.LMFLEET_BUILD_JOBS) || os.cpus().length;
const nativeArch = process.env.LMFLEET_NATIVE_ARCH === '0' ? 'OFF' : 'ON';

function log(msg) {
  console.log(`[lmfleet-native] ${msg}`);
}

function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

function findNvcc() {
  const candidates = [process.env.CUDACXX, which('nvcc'), process.env.CUDA_HOME && path.join(process.env.CUDA_HOME, 'bin/nvcc'), '/usr/local/cuda/bin/nvcc'];
  return candidates.find((c) => c && fs.existsSync(c)) || null;
}

function findCublas(nvcc) {
  const root = path.resolve(path.dirname(fs.realpathSync(nvcc)), '..');
  const dirs = [path.join(root, 'lib64'), path.join(root, 'lib'), path.join(root, 'targets/x86_64-linux/lib'),
    '/usr/lib/x86_64-linux-gnu', '/usr/local/cuda/lib64'];
  for (const d of dirs) {
    try {
      if (fs.readdirSync(d).some((f) => /^libcublas\.so/.test(f))) return d;
    } catch {
      /* missing dir */
    }
  }
  return null;
}

function cmakeBuild(variant, extra = []) {
  const out = path.join(nativeDir, 'build', variant);
  const args = [cmakeJs, 'build', '-d', nativeDir, '-O', out, '-p', String(jobs),
    `--CDLMFLEET_VARIANT=${variant}`, `--CDNODE_ADDON_API_DIR=${addonApiDir}`, `--CDLMFLEET_NATIVE_ARCH=${nativeArch}`, ...extra];
  const t0 = Date.now();
  const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`cmake-js failed for variant ${variant} (exit ${r.status})`);
  log(`${variant}: built in ${((Date.now() - t0) / 1000).toFixed(1)} s -> ${path.relative(process.cwd(), out)}/Release`);
}

// Compile-checks src/ops/*.cu (the kernels; src/cuda/* needs cuBLAS headers) with nvcc -c for sm_80 + sm_90.
// Objects and dependency files stay in build/cuda-check, so only changed kernels (or kernels whose headers
// changed) are recompiled on the next build; `jobs` nvcc processes run at once.
function compileCheckCu(nvcc) {
  const opsDir = path.join(nativeDir, 'src/ops');
  const cuFiles = fs.readdirSync(opsDir).filter((f) => f.endsWith('.cu')).sort();
  if (cuFiles.length === 0) {
    log('cuda: no src/ops/*.cu files to compile-check yet');
    return;
  }
  const dir = path.join(nativeDir, 'build', 'cuda-check');
  fs.mkdirSync(dir, { recursive: true });
  const flags = `-c -std=c++17 -O2 -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -I ${path.join(nativeDir, 'src')}`;
  const rules = cuFiles.map((f) => `${f}.o: ${path.join(opsDir, f)}\n\t@${nvcc} ${flags} -MD -MF ${f}.d -MT $@ $< -o $@.tmp && mv $@.tmp $@ || (echo "nvcc failed: ${f}"; exit 1)\n`);
  const mk = `all: ${cuFiles.map((f) => `${f}.o`).join(' ')}\n${rules.join('')}-include ${cuFiles.map((f) => `${f}.d`).join(' ')}\n`;
  fs.writeFileSync(path.join(dir, 'Makefile'), mk);
  const t0 = Date.now();
  const r = spawnSync('make', ['-k', '-s', '-j', String(jobs), '-C', dir], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`cuda: compile-check of src/ops/*.cu failed (see nvcc output above)`);
  log(`cuda: compile-checked ${cuFiles.length} src/ops/*.cu file(s) for sm_80/sm_90 (${((Date.now() - t0) / 1000).toFixed(1)} s, incremental)`);
}

function main() {
  const t0 = Date.now();
  cmakeBuild('cpu');
  if (process.env.LMFLEET_CUDA === '0') {
    log('cuda: skipped (LMFLEET_CUDA=0)');
  } else {
    const nvcc = findNvcc();
    if (!nvcc) {
      log('cuda: skipped (no nvcc)');
    } else if (!findCublas(nvcc)) {
      log('cuda: skipped (no cuBLAS)');
      compileCheckCu(nvcc);
    } else {
      cmakeBuild('cuda', [`--CDCMAKE_CUDA_COMPILER=${nvcc}`]);
    }
  }
  log(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

try {
  main();
} catch (e) {
  console.error(`[lmfleet-native] ${e.message}`);
  process.exit(1);
}
