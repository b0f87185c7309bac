// lmfleet lite calibrate → lite auto_awq → convert on a tiny model, through the real CLI entry and the real CPU backend.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isWorkspace, readSafetensorsDir, writeTinyModel } from '@lmfleet/engine';
import { nativeCpuOrReport } from '@lmfleet/engine/testing/native-cpu';
import { run } from '../main';
import { captureIO } from '../testing/capture-io';

const native = nativeCpuOrReport('cli quantization commands');

const makeIO = () => captureIO({ native: native ?? undefined });

(native ? describe : describe.skip)('lmfleet lite calibrate / auto_awq / convert', () => {
  jest.setTimeout(120_000);
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmfleet-cli-q-'));
    writeTinyModel(path.join(dir, 'model'), { arch: 'qwen2', hiddenSize: 64, intermediateSize: 128, numLayers: 2 });
    fs.writeFileSync(path.join(dir, 'data.txt'), 'The cat sat on the mat and the dog slept by the door. '.repeat(60));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('runs the pipeline with progress on stderr', async () => {
    const model = path.join(dir, 'model');
    const work = path.join(dir, 'work');
    const c = makeIO();
    expect(await run(['lite', 'calibrate', model, '--calib-dataset', path.join(dir, 'data.txt'), '--calib-samples', '4', '--calib-seqlen', '64', '--work-dir', work, '--device', 'cpu'], c.io)).toBe(0);
    expect(c.out()).toMatch(/calibration of Qwen2ForCausalLM on 4 samples x 64 tokens/);
    expect(c.err()).toMatch(/calibrate .*1000\/1000/);
    expect(fs.existsSync(path.join(work, 'calib_stats.safetensors'))).toBe(true);

    const a = makeIO();
    expect(await run(['lite', 'auto_awq', model, '--w-bits', '4', '--w-group-size', '32', '--work-dir', work, '--search-clip', 'false', '--device', 'cpu'], a.io)).toBe(0);
    expect(a.out()).toMatch(/W4 g32 AWQ \(scale search\): AutoAWQ checkpoint written to/);
    expect(a.err()).toMatch(/auto_awq /);
    expect(readSafetensorsDir(work).tensors.has('model.layers.1.self_attn.q_proj.qweight')).toBe(true);

    const v = makeIO();
    const ws = path.join(dir, 'ws');
    expect(await run(['convert', 'qwen2', work, '--model-format', 'awq', '--group-size', '32', '--dst-path', ws], v.io)).toBe(0);
    expect(v.out()).toMatch(/AWQ w4 g32/);
    expect(isWorkspace(ws)).toBe(true);

    const e = makeIO();
    expect(await run(['eval', 'ppl', ws, '--dataset', path.join(dir, 'data.txt'), '--seqlen', '64', '--max-windows', '2', '--json', '--backend', 'cpu'], e.io)).toBe(0);
    expect(JSON.parse(e.out()).ppl).toBeGreaterThan(1);
  });

  it('a mixture-of-experts model (Mixtral) goes through the same commands: auto_awq calibrates first, eval ppl reads the result', async () => {
    const model = path.join(dir, 'mixtral');
    writeTinyModel(model, { arch: 'mixtral', hiddenSize: 64, intermediateSize: 128, numLayers: 2, numExperts: 4, numExpertsPerTok: 2 });
    const work = path.join(dir, 'mixtral-work');
    const a = makeIO();
    expect(await run(['lite', 'auto_awq', model, '--w-group-size', '32', '--work-dir', work, '--calib-dataset', path.join(dir, 'data.txt'),
      '--calib-samples', '2', '--calib-seqlen', '64', '--device', 'cpu'], a.io)).toBe(0);
    expect(a.out()).toMatch(/W4 g32 AWQ .*AutoAWQ checkpoint written to/);
    expect(a.err()).toMatch(/\[info\] MixtralForCausalLM is a mixture of experts: calibration runs layer by layer in TypeScript/);
    expect(a.err()).toMatch(/\[info\] MixtralForCausalLM is a mixture of experts: the search runs layer by layer in TypeScript/);
    const t = readSafetensorsDir(work).tensors;
    expect(t.has('model.layers.1.block_sparse_moe.experts.3.w2.qweight')).toBe(true);
    expect(t.get('model.layers.1.block_sparse_moe.gate.weight')?.dtype).toBe('F16');
    const e = makeIO();
    expect(await run(['eval', 'ppl', work, '--dataset', path.join(dir, 'data.txt'), '--seqlen', '64', '--max-windows', '2', '--json', '--backend', 'cpu'], e.io)).toBe(0);
    expect(JSON.parse(e.out()).ppl).toBeGreaterThan(1);
  });

  it('bad flags and inputs exit non-zero with a clear message', async () => {
    const model = path.join(dir, 'model');
    const a = makeIO();
    expect(await run(['lite', 'auto_awq', model, '--w-bits', '3', '--work-dir', path.join(dir, 'w3')], a.io)).toBe(1);
    expect(a.err()).toMatch(/unsupported weight bits 3/);
    const b = makeIO();
    expect(await run(['lite', 'auto_awq', model, '--search-scale', 'maybe', '--work-dir', path.join(dir, 'w4')], b.io)).not.toBe(0);
    const c = makeIO();
    expect(await run(['lite', 'calibrate', model, '--calib-dataset', 'ptb', '--work-dir', path.join(dir, 'w5')], c.io)).toBe(1);
    expect(c.err()).toMatch(/unknown calibration dataset "ptb".*built-in datasets: cmake-docs/);
    expect(fs.existsSync(path.join(dir, 'w3'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'w5'))).toBe(false);
  });

  it('--calib-dataset defaults to the built-in cmake-docs set (offline)', async () => {
    const d = makeIO();
    const work = path.join(dir, 'w6');
    expect(await run(['lite', 'calibrate', path.join(dir, 'model'), '--calib-samples', '2', '--calib-seqlen', '64', '--work-dir', work, '--device', 'cpu'], d.io)).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(work, 'calib_manifest.json'), 'utf8'))).toMatchObject({ dataset: 'cmake-docs', samples: 2, seqlen: 64 });
  });
});
