import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelFormatError } from './errors';
import { inspectModel } from './inspect';
import { sharedModelDir } from './testing/shared-model';
import { makeTempDir } from './testing/tmp-dir';
import { writeTinyModel } from './testing/tiny-model';

describe('inspectModel', () => {
  it('describes the shared model', () => {
    const dir = sharedModelDir('tiny-qwen2-pydocs');
    if (!dir) {
      console.log('not run: no shared model');
      return;
    }
    const i = inspectModel(dir);
    expect(i).toMatchObject({
      architecture: 'Qwen2ForCausalLM', arch: 'qwen2', supported: true, modelType: 'qwen2', dtype: 'float16', numParams: 15737472,
      contextLength: 1024, quantization: null, hasTokenizer: true, hasChatTemplate: true,
    });
    expect(i.sizeBytes).toBe(13379704 + 11811704 + 6291576);
  });

  it('describes a generated bf16 model, an unsupported architecture, and an AWQ config', () => {
    const tmp = makeTempDir();
    try {
      const info = writeTinyModel(tmp.dir, { arch: 'llama', dtype: 'bf16' });
      const i = inspectModel(info.dir);
      expect(i).toMatchObject({ architecture: 'LlamaForCausalLM', dtype: 'bfloat16', contextLength: 512, hasTokenizer: true, hasChatTemplate: true });
      const cfgFile = path.join(tmp.dir, 'config.json');
      const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
      fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, architectures: ['FalconForCausalLM'], quantization_config: { quant_method: 'awq', bits: 4, group_size: 128 } }));
      const j = inspectModel(info.dir);
      expect(j).toMatchObject({ architecture: 'FalconForCausalLM', supported: false, quantization: { quant_method: 'awq', bits: 4, group_size: 128 } });
      expect(j.supportedArchitectures).toContain('Qwen2ForCausalLM');
    } finally {
      tmp.cleanup();
    }
  });

  it('gives a clear ModelFormatError for bad directories', () => {
    const tmp = makeTempDir();
    try {
      expect(() => inspectModel(path.join(tmp.dir, 'missing'))).toThrow(/model directory does not exist/);
      expect(() => inspectModel(tmp.dir)).toThrow(/config.json is missing/);
      fs.writeFileSync(path.join(tmp.dir, 'config.json'), '{"architectures": ["Qwen2ForCausalLM"]');
      expect(() => inspectModel(tmp.dir)).toThrow(ModelFormatError);
      fs.writeFileSync(path.join(tmp.dir, 'config.json'), '{"architectures": ["Qwen2ForCausalLM"]}');
      expect(() => inspectModel(tmp.dir)).toThrow(/no safetensors weights/);
      fs.writeFileSync(path.join(tmp.dir, 'config.json'), '{}');
      expect(() => inspectModel(tmp.dir)).toThrow(/no "architectures" list/);
    } finally {
      tmp.cleanup();
    }
  });
});
