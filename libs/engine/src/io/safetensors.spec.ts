import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelFormatError } from '../errors';
import { makeTempDir } from '../testing/tmp-dir';
import { writeTinyModel } from '../testing/tiny-model';
import { readSafetensorsDir, readSafetensorsHeader, readTensorBytes, writeSafetensors } from './safetensors';

describe('safetensors', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeEach(() => (tmp = makeTempDir()));
  afterEach(() => tmp.cleanup());

  it('reads dtype, shape and absolute offsets, and the bytes at those offsets', () => {
    const file = path.join(tmp.dir, 'a.safetensors');
    const a = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const b = new Uint8Array(new Int32Array([7, -1]).buffer);
    writeSafetensors(file, [
      { name: 'a', dtype: 'F16', shape: [2, 3], data: a },
      { name: 'b', dtype: 'I32', shape: [2], data: b },
    ]);
    const h = readSafetensorsHeader(file);
    expect(h.metadata).toEqual({ format: 'pt' });
    const [ta, tb] = h.tensors;
    expect(ta).toMatchObject({ name: 'a', dtype: 'F16', shape: [2, 3], file, byteLength: 12 });
    expect(tb).toMatchObject({ name: 'b', dtype: 'I32', shape: [2], byteLength: 8, offset: ta.offset + 12 });
    expect(ta.offset % 8).toBe(0);
    expect(Array.from(readTensorBytes(ta))).toEqual(Array.from(a));
    expect(Array.from(new Int32Array(readTensorBytes(tb).slice().buffer))).toEqual([7, -1]);
  });

  it('names the file and tensor of a truncated file', () => {
    const file = path.join(tmp.dir, 'trunc.safetensors');
    writeSafetensors(file, [
      { name: 'x', dtype: 'F16', shape: [4], data: new Uint8Array(8) },
      { name: 'y', dtype: 'F16', shape: [8], data: new Uint8Array(16) },
    ]);
    const full = fs.statSync(file).size;
    fs.truncateSync(file, full - 4);
    let err: unknown;
    try {
      readSafetensorsHeader(file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ModelFormatError);
    const e = err as ModelFormatError;
    expect(e.code).toBe('E_MODEL_FORMAT');
    expect(e.file).toBe(file);
    expect(e.tensor).toBe('y');
    expect(e.message).toMatch(/truncated/);
    expect(e.expected).toBe(`${full} bytes`);
    expect(e.found).toBe(`${full - 4} bytes`);
  });

  it('rejects a byte range that does not match shape × dtype, and a bad header length', () => {
    const file = path.join(tmp.dir, 'bad.safetensors');
    writeSafetensors(file, [{ name: 'x', dtype: 'F32', shape: [3], data: new Uint8Array(8) }]);
    expect(() => readSafetensorsHeader(file)).toThrow(/does not match its shape/);
    const junk = path.join(tmp.dir, 'junk.safetensors');
    fs.writeFileSync(junk, Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 2]));
    expect(() => readSafetensorsHeader(junk)).toThrow(ModelFormatError);
  });

  it('reads a sharded directory through model.safetensors.index.json', () => {
    writeTinyModel(tmp.dir, { shards: 3 });
    const idx = readSafetensorsDir(tmp.dir);
    expect(idx.files).toHaveLength(3);
    expect(idx.files.every((f) => path.isAbsolute(f))).toBe(true);
    const embed = idx.tensors.get('model.embed_tokens.weight')!;
    expect(embed.dtype).toBe('F16');
    expect(embed.shape[1]).toBe(64);
    const index = JSON.parse(fs.readFileSync(path.join(tmp.dir, 'model.safetensors.index.json'), 'utf8'));
    expect(idx.tensors.size).toBe(Object.keys(index.weight_map).length);
    for (const [name, f] of Object.entries(index.weight_map)) expect(idx.tensors.get(name)!.file).toBe(path.join(tmp.dir, f as string));
  });

  it('reports a shard missing from the index and a directory without weights', () => {
    writeTinyModel(tmp.dir, { shards: 2 });
    fs.rmSync(path.join(tmp.dir, 'model-00002-of-00002.safetensors'));
    expect(() => readSafetensorsDir(tmp.dir)).toThrow(/shard named by the safetensors index is missing/);
    const empty = path.join(tmp.dir, 'empty');
    fs.mkdirSync(empty);
    expect(() => readSafetensorsDir(empty)).toThrow(/no safetensors weights/);
  });
});
