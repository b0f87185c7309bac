import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ArtifactStore } from './artifact-store';

describe('ArtifactStore', () => {
  let dir: string;
  let store: ArtifactStore;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmf-art-'));
    store = new ArtifactStore({ artifactDir: dir });
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes atomically and records bytes and sha256', async () => {
    const f = await store.write('jobs/j1/out.jsonl', ['{"a":1}\n', Buffer.from('{"b":2}\n')]);
    const content = '{"a":1}\n{"b":2}\n';
    expect(f).toEqual({ path: 'jobs/j1/out.jsonl', bytes: content.length, sha256: createHash('sha256').update(content).digest('hex') });
    expect(fs.readFileSync(path.join(dir, f.path), 'utf8')).toBe(content);
    expect(fs.readdirSync(path.join(dir, 'jobs/j1'))).toEqual(['out.jsonl']); // no temp file left
  });

  it('overwrites on re-run', async () => {
    await store.write('a.txt', 'one');
    const f = await store.write('a.txt', 'two!');
    expect(f.bytes).toBe(4);
    expect(fs.readFileSync(path.join(dir, 'a.txt'), 'utf8')).toBe('two!');
  });

  it('leaves nothing behind when the source fails', async () => {
    async function* broken() {
      yield 'part';
      throw new Error('boom');
    }
    await expect(store.write('b.txt', broken())).rejects.toThrow('boom');
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('refuses paths that leave the store', async () => {
    await expect(store.write('../x', 'y')).rejects.toThrow(/escapes/);
    expect(() => store.resolve('/etc/passwd')).toThrow(/escapes/);
    await expect(store.open('missing.txt')).rejects.toThrow(/not found/);
  });
});
