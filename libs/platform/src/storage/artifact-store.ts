import { Inject, Injectable } from '@nestjs/common';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { APP_CONFIG, type AppConfig } from '../config';
import { NotFoundError } from '../errors';

export interface StoredFile {
  /** Relative to the store's root (what the artifacts table records). */
  path: string;
  bytes: number;
  sha256: string;
}

/**
 * The shared artifact directory. Writes go to a temporary name in the target directory, are fsynced and
 * then renamed, so readers never see a partial file and a crashed writer leaves no half artifact behind.
 */
@Injectable()
export class ArtifactStore {
  readonly root: string;

  constructor(@Inject(APP_CONFIG) config: Pick<AppConfig, 'artifactDir'>) {
    this.root = path.resolve(config.artifactDir);
  }

  /** Absolute path of a stored relative path; refuses anything that leaves the root. */
  resolve(rel: string): string {
    const abs = path.resolve(this.root, rel);
    const back = path.relative(this.root, abs);
    if (!back || back.startsWith('..') || path.isAbsolute(back)) throw new Error(`artifact path escapes the store: ${rel}`);
    return abs;
  }

  /** Writes `data` (whole, or chunk by chunk) to `rel` atomically. */
  async write(rel: string, data: string | Uint8Array | Iterable<string | Uint8Array> | AsyncIterable<string | Uint8Array>): Promise<StoredFile> {
    const target = this.resolve(rel);
    const dir = path.dirname(target);
    await fs.mkdir(dir, { recursive: true });
    const tmp = path.join(dir, `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    const hash = createHash('sha256');
    let bytes = 0;
    const fh = await fs.open(tmp, 'w', 0o644);
    try {
      const chunks = typeof data === 'string' || data instanceof Uint8Array ? [data] : data;
      for await (const chunk of chunks as AsyncIterable<string | Uint8Array>) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        hash.update(buf);
        bytes += buf.byteLength;
        await fh.write(buf);
      }
      await fh.sync();
    } catch (err) {
      await fh.close().catch(() => undefined);
      await fs.rm(tmp, { force: true });
      throw err;
    }
    await fh.close();
    await fs.rename(tmp, target);
    await this.syncDir(dir);
    return { path: path.relative(this.root, target), bytes, sha256: hash.digest('hex') };
  }

  /** A fresh, empty directory at `rel` (a re-run starts from nothing); returns its absolute path. */
  async emptyDir(rel: string): Promise<string> {
    const abs = this.resolve(rel);
    await fs.rm(abs, { recursive: true, force: true });
    await fs.mkdir(abs, { recursive: true });
    return abs;
  }

  /** Every file under directory `rel` (written by someone else, e.g. the engine), with bytes and sha256. */
  async describeDir(rel: string): Promise<Array<StoredFile & { name: string }>> {
    const dir = this.resolve(rel);
    const names = (await fs.readdir(dir, { recursive: true, withFileTypes: true }))
      .filter((e) => e.isFile() && !e.name.startsWith('.'))
      .map((e) => path.relative(dir, path.join(e.parentPath ?? (e as { path?: string }).path ?? dir, e.name)))
      .sort();
    const out: Array<StoredFile & { name: string }> = [];
    for (const name of names) {
      const abs = path.join(dir, name);
      const hash = createHash('sha256');
      let bytes = 0;
      for await (const chunk of createReadStream(abs)) {
        hash.update(chunk as Buffer);
        bytes += (chunk as Buffer).byteLength;
      }
      out.push({ name, path: path.relative(this.root, abs), bytes, sha256: hash.digest('hex') });
    }
    return out;
  }

  async open(rel: string): Promise<{ stream: ReadStream; bytes: number }> {
    const abs = this.resolve(rel);
    const st = await fs.stat(abs).catch(() => null);
    if (!st?.isFile()) throw new NotFoundError('artifact file', rel);
    return { stream: createReadStream(abs), bytes: st.size };
  }

  private async syncDir(dir: string): Promise<void> {
    const dh = await fs.open(dir, 'r').catch(() => null);
    if (!dh) return;
    await dh.sync().catch(() => undefined); // not supported on every filesystem
    await dh.close();
  }
}
