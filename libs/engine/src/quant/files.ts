// Write-then-rename helpers: results appear in their final place complete or not at all.
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Runs `write(tmpDir)` in a fresh temporary folder inside `destDir` (created when missing), then renames every file
 * it wrote into `destDir`. On failure the temporary folder is removed, and so is `destDir` when this call created it
 * and it is empty: nothing half-written is left behind.
 */
export async function writeFilesAtomically<T>(destDir: string, write: (tmpDir: string) => Promise<T> | T): Promise<T> {
  const abs = path.resolve(destDir);
  const created = !fs.existsSync(abs);
  fs.mkdirSync(abs, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(abs, '.tmp-'));
  try {
    const result = await write(tmp);
    // config/manifest files last, so a reader that sees them sees the files they describe
    const isLast = (f: string) => /(^config\.json$|manifest\.json$|^lmfleet\.json$)/.test(f);
    const files = fs.readdirSync(tmp).sort((a, b) => Number(isLast(a)) - Number(isLast(b)));
    for (const f of files) fs.renameSync(path.join(tmp, f), path.join(abs, f));
    fs.rmSync(tmp, { recursive: true, force: true });
    return result;
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (created && fs.existsSync(abs) && fs.readdirSync(abs).length === 0) fs.rmdirSync(abs);
    throw e;
  }
}

/**
 * Writes a whole directory: `write(tmp)` fills a sibling temporary folder, which is then renamed to `destDir`
 * (an existing `destDir` is replaced only after the new one is complete).
 */
export async function writeDirAtomically<T>(destDir: string, write: (tmpDir: string) => Promise<T> | T): Promise<T> {
  const abs = path.resolve(destDir);
  fs.mkdirSync(path.dirname(abs), { recursive: true });
  const tmp = fs.mkdtempSync(path.join(path.dirname(abs), `.${path.basename(abs)}.tmp-`));
  try {
    const result = await write(tmp);
    fs.chmodSync(tmp, 0o755); // mkdtemp makes it 0700; the result is an ordinary folder
    if (fs.existsSync(abs)) {
      const old = `${tmp}.old`;
      fs.renameSync(abs, old);
      fs.renameSync(tmp, abs);
      fs.rmSync(old, { recursive: true, force: true });
    } else {
      fs.renameSync(tmp, abs);
    }
    return result;
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Tokenizer, chat-template and generation files a model directory ships (copied next to converted weights). */
export const AUX_MODEL_FILES = [
  'tokenizer.json', 'tokenizer.model', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja',
  'chat_template.json', 'generation_config.json', 'vocab.json', 'merges.txt', 'added_tokens.json',
];

export function copyAuxFiles(srcDir: string, dstDir: string): string[] {
  const copied: string[] = [];
  for (const f of AUX_MODEL_FILES) {
    const src = path.join(srcDir, f);
    if (fs.existsSync(src)) {
      fs.copyFileSync(src, path.join(dstDir, f));
      copied.push(f);
    }
  }
  return copied;
}

/** An f32 array as little-endian bytes (a view, no copy). */
export function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
