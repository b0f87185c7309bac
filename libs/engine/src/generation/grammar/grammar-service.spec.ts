import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { DisposedError, EngineError, InvalidArgumentError } from '../../errors';
import { rng, writeTinyTokenizer } from '../../testing/tiny-model';
import { makeTempDir } from '../../testing/tmp-dir';
import { parseSentencePieceModel, sentencePieceToTokenizerJson } from '../../tokenizer/sentencepiece';
import { byteLevelAlphabet } from '../../tokenizer/byte-level';
import { Tokenizer } from '../../tokenizer/tokenizer';
import { defaultGrammarWorkers, GrammarService, grammarVocab, type GuideHandle, type VocabType } from './grammar-service';

const SCHEMA = { type: 'object', properties: { ok: { type: 'boolean' }, n: { type: 'integer' } }, required: ['ok', 'n'] };
/** Padding past the tokenizer, as a model's vocab_size often has: those ids must never be allowed. */
const PAD = 40;
const SP_FIXTURES = path.join(__dirname, '../../tokenizer/fixtures');

/** The tiny byte-level tokenizer's single-byte tokens have id = byte: ASCII text → its token ids. */
const bytes = (text: string): number[] => [...Buffer.from(text, 'latin1')];

/** The worker thread of a pool slot (undefined while the slot has none): reaches into the service, for crash tests. */
const workerOf = (s: GrammarService, slot: number): Worker | undefined => (s as unknown as { slots: { worker?: Worker }[] }).slots[slot].worker;

function allowedIds(mask: Uint32Array): number[] {
  const ids: number[] = [];
  for (let i = 0; i < mask.length * 32; i++) if ((mask[i >>> 5] >>> (i & 31)) & 1) ids.push(i);
  return ids;
}

/**
 * Samples an output the way a model under the guide would: a seeded random pick among the allowed tokens. A uniform
 * pick would spend hundreds of tokens inside each free JSON string, so half the time it takes a token that closes
 * something (`"`, `}`, `]`, a stop token) when one is allowed.
 */
async function walk(guide: GuideHandle, closers: ReadonlySet<number>, seed: number, maxSteps = 200, closeP = 0.5): Promise<{ tokens: number[]; terminated: boolean; seen: Set<number> }> {
  const rand = rng(seed);
  const tokens: number[] = [];
  const seen = new Set<number>();
  let mask: Uint32Array | null = guide.mask;
  while (mask && tokens.length < maxSteps) {
    const allowed = allowedIds(mask);
    expect(allowed.length).toBeGreaterThan(0);
    for (const id of allowed) seen.add(id);
    const closing = allowed.filter((id) => closers.has(id));
    const pool = closing.length > 0 && rand() < closeP ? closing : allowed;
    const token = pool[Math.floor(rand() * pool.length)];
    tokens.push(token);
    mask = await guide.accept([token]);
  }
  return { tokens, terminated: mask === null, seen };
}

interface Case {
  name: string;
  /** Writes tokenizer.json (+ tokenizer_config.json) into dir. */
  write(dir: string): void;
  stopTokens: string[];
  vocabType: VocabType;
  prependSpace: boolean;
  /** Whether the vocabulary can write any byte (byte-level or byte fallback): a tab, a newline, any character. */
  anyByte: boolean;
}

function sentencePiece(fixture: string): (dir: string) => void {
  return (dir) => {
    const model = parseSentencePieceModel(new Uint8Array(fs.readFileSync(path.join(SP_FIXTURES, fixture))));
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(sentencePieceToTokenizerJson(model)));
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>' }));
  };
}

const CASES: Case[] = [
  { name: 'tiny qwen2 (byte-level BPE)', write: (d) => writeTinyTokenizer(d, { arch: 'qwen2' }), stopTokens: ['<|endoftext|>', '<|im_end|>'], vocabType: 'byte_level', prependSpace: false, anyByte: true },
  { name: 'tiny llama (byte-level BPE, <s> </s>)', write: (d) => writeTinyTokenizer(d, { arch: 'llama' }), stopTokens: ['</s>', '<|im_end|>'], vocabType: 'byte_level', prependSpace: false, anyByte: true },
  { name: 'SentencePiece BPE with byte fallback', write: sentencePiece('bpe-llama.model'), stopTokens: ['</s>'], vocabType: 'byte_fallback', prependSpace: true, anyByte: true },
  // Its dummy prefix is a regex Replace (SentencePiece's remove_extra_whitespaces), which xgrammar's own detection does
  // not read either; matching does not use the flag.
  { name: 'SentencePiece Unigram without byte fallback', write: sentencePiece('unigram-nfkc.model'), stopTokens: ['</s>'], vocabType: 'byte_fallback', prependSpace: false, anyByte: false },
];

describe.each(CASES)('GrammarService on $name', (c) => {
  let tmp: ReturnType<typeof makeTempDir>;
  let tok: Tokenizer;
  let service: GrammarService;
  let stopIds: number[];
  let closers: Set<number>;
  let vocabSize: number;

  beforeAll(() => {
    tmp = makeTempDir();
    c.write(tmp.dir);
    tok = Tokenizer.fromDir(tmp.dir);
    vocabSize = tok.vocabSize + PAD;
    stopIds = c.stopTokens.map((t) => tok.tokenToId(t)!);
    closers = new Set(stopIds);
    for (let id = 0; id < tok.vocabSize; id++) if (['"', '}', ']'].includes(tok.decode([id]))) closers.add(id);
    service = GrammarService.create(path.join(tmp.dir, 'tokenizer.json'), vocabSize, stopIds);
  });
  afterAll(async () => {
    await service.dispose();
    tmp.cleanup();
  });

  it('reads the vocabulary as xgrammar needs it: decoding, prefix space, specials blanked, padding empty', () => {
    const json: unknown = JSON.parse(fs.readFileSync(path.join(tmp.dir, 'tokenizer.json'), 'utf8'));
    const v = grammarVocab(json, vocabSize);
    expect({ vocabType: v.vocabType, prependSpace: v.prependSpace }).toEqual({ vocabType: c.vocabType, prependSpace: c.prependSpace });
    expect(v.vocab).toHaveLength(vocabSize);
    for (const id of stopIds) expect(v.vocab[id]).toBe('');
    expect(v.vocab.slice(tok.vocabSize)).toEqual(new Array(PAD).fill(''));
    expect(v.vocab.filter((t) => t !== '').length).toBeGreaterThan(220); // 256 bytes + merges, less 32 control bytes
    // JSON forbids raw control characters in strings (xgrammar's string rule lets all but \r and \n through)
    const control = [...Array(tok.vocabSize).keys()].filter((id) => /[\u0000-\u001f]/.test(tok.decode([id], { skipSpecialTokens: false })));
    if (c.vocabType === 'byte_level') expect(control.length).toBeGreaterThan(0);
    for (const id of control) expect(v.vocab[id]).toBe('');
  });

  it('json_schema: a random walk through the masks ends in a stop token and decodes to an object of the schema', async () => {
    for (const seed of [1, 2, 3]) {
      const guide = await service.open({ type: 'json_schema', schema: SCHEMA }, stopIds);
      expect(guide.mask).toHaveLength(Math.ceil(vocabSize / 32));
      const { tokens, terminated } = await walk(guide, closers, seed);
      guide.close();
      expect(terminated).toBe(true);
      expect(stopIds).toContain(tokens[tokens.length - 1]);
      const text = tok.decode(tokens.slice(0, -1));
      const value = JSON.parse(text) as Record<string, unknown>;
      expect(Object.keys(value)).toEqual(['ok', 'n']); // strict by default: nothing the schema does not name
      expect(typeof value.ok).toBe('boolean');
      expect(Number.isInteger(value.n)).toBe(true);
      expect(text).toMatch(/^\{"ok": (true|false), "n": -?\d+\}$/); // one line, json.dumps separators
    }
  });

  it('free strings: every walk is valid UTF-8 (no stray continuation bytes, overlong forms, surrogates or C0 / C1 / F5-FF)', async () => {
    if (c.vocabType !== 'byte_level') return; // the other vocabularies' text tokens are whole UTF-8 by construction
    const v = grammarVocab(JSON.parse(fs.readFileSync(path.join(tmp.dir, 'tokenizer.json'), 'utf8')), vocabSize);
    const byteOf = new Map(byteLevelAlphabet().map((ch, b) => [ch, b]));
    const fatal = new TextDecoder('utf-8', { fatal: true });
    const strings = { type: 'object', properties: { s: { type: 'array', items: { type: 'string' }, minItems: 3, maxItems: 3 } }, required: ['s'] };
    let nonAscii = 0;
    for (const seed of [21, 22, 23, 24, 25, 26, 27, 28]) {
      const guide = await service.open({ type: 'json_schema', schema: strings }, stopIds);
      const { tokens, terminated } = await walk(guide, closers, seed, 400, 0.05);
      guide.close();
      expect(terminated).toBe(true);
      const bytes = Uint8Array.from(tokens.slice(0, -1).flatMap((id) => [...v.vocab[id]].map((ch) => byteOf.get(ch)!)));
      nonAscii += bytes.filter((b) => b >= 0x80).length;
      expect(() => fatal.decode(bytes)).not.toThrow();
      expect((JSON.parse(fatal.decode(bytes)) as { s: string[] }).s).toHaveLength(3);
    }
    expect(nonAscii).toBeGreaterThan(20); // the walks did go through multi-byte characters
  });

  it('choice: every walk decodes to one of the strings, and each string can come out', async () => {
    // (a vocabulary without byte pieces cannot write a tab or every character: ASCII words there)
    const choices = c.anyByte ? ['yes', 'no', 'maybe so', 'naïve "quoted"\tline'] : ['yes', 'no', 'maybe'];
    const got = new Set<string>();
    for (let seed = 31; seed < 31 + 24 && got.size < choices.length; seed++) {
      const guide = await service.open({ type: 'choice', choices }, stopIds);
      const { tokens, terminated } = await walk(guide, closers, seed, 200, 0);
      guide.close();
      expect(terminated).toBe(true);
      const text = tok.decode(tokens.slice(0, -1));
      expect(choices).toContain(text);
      got.add(text);
    }
    expect(got.size).toBe(choices.length);
  });

  it('grammar: an EBNF grammar with newlines (control characters are text here, unlike JSON)', async () => {
    if (!c.anyByte) return; // no newline piece to write
    const grammar = 'root ::= line line\nline ::= ("a" | "b")+ "\\n"';
    for (const seed of [41, 42, 43]) {
      const guide = await service.open({ type: 'grammar', grammar }, stopIds);
      const { tokens, terminated } = await walk(guide, closers, seed, 200, 0);
      guide.close();
      expect(terminated).toBe(true);
      expect(tok.decode(tokens.slice(0, -1))).toMatch(/^[ab]+\n[ab]+\n$/);
    }
  });

  it('regex: every walk matches the pattern as a whole', async () => {
    const pattern = '(yes|no|maybe)-[0-9][0-9]?(\\.[a-z][a-z]?)?'; // bounded: a random walk ends
    const re = new RegExp(`^(?:${pattern})$`);
    for (const seed of [51, 52, 53, 54]) {
      const guide = await service.open({ type: 'regex', pattern }, stopIds);
      const { tokens, terminated } = await walk(guide, closers, seed, 200);
      guide.close();
      expect(terminated).toBe(true);
      expect(tok.decode(tokens.slice(0, -1))).toMatch(re);
    }
  });

  it('json_object: the walk decodes to a plain JSON object, and padded or special ids are never allowed', async () => {
    const objects: object[] = [];
    for (const seed of [11, 12, 13, 14, 15, 16]) {
      const guide = await service.open({ type: 'json_object' }, stopIds);
      const { tokens, terminated, seen } = await walk(guide, closers, seed);
      guide.close();
      expect(terminated).toBe(true);
      expect(stopIds).toContain(tokens[tokens.length - 1]);
      const value: unknown = JSON.parse(tok.decode(tokens.slice(0, -1)));
      expect(value !== null && typeof value === 'object' && !Array.isArray(value)).toBe(true);
      objects.push(value as object);
      for (const id of seen) {
        expect(id).toBeLessThan(tok.vocabSize);
        if (!stopIds.includes(id)) expect(tok.decode([id], { skipSpecialTokens: false })).not.toMatch(/[\u0000-\u001f]/);
        if (tok.isSpecial(id)) expect(stopIds).toContain(id);
      }
    }
    expect(objects.some((o) => Object.keys(o).length > 0)).toBe(true); // not only `{}`
  });
});

describe('GrammarService errors and lifecycle', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let file: string;
  let vocabSize: number;
  let eos: number;
  let imEnd: number;
  let brace: number;
  let service: GrammarService;

  beforeAll(() => {
    tmp = makeTempDir();
    const t = writeTinyTokenizer(tmp.dir, { arch: 'qwen2' });
    file = path.join(tmp.dir, 'tokenizer.json');
    vocabSize = t.vocabSize;
    eos = t.ids['<|endoftext|>'];
    imEnd = t.ids['<|im_end|>'];
    brace = bytes('{')[0];
    service = GrammarService.create(file, vocabSize, [eos]);
  });
  afterAll(async () => {
    await service.dispose();
    tmp.cleanup();
  });

  it("rejects a schema xgrammar refuses with its reason, and keeps working after many (each abort retires xgrammar's instance)", async () => {
    const bad = service.open({ type: 'json_schema', schema: '{"type": 12}' });
    await expect(bad).rejects.toThrow(InvalidArgumentError);
    await expect(bad).rejects.toThrow("response_format's JSON schema is invalid: Type should be a string");
    await expect(service.open({ type: 'json_schema', schema: '{"type": "object"' })).rejects.toThrow(/JSON schema is invalid: the schema is not valid JSON/);
    await expect(service.open({ type: 'json_schema', schema: { type: 'string', pattern: '((' } })).rejects.toThrow(/JSON schema is invalid: Regex parsing error/);
    // Without retiring, an instance corrupts its memory after ~34 aborts.
    for (let i = 0; i < 40; i++) await expect(service.open({ type: 'json_schema', schema: { type: 'object', properties: { a: { type: i } } } })).rejects.toThrow(InvalidArgumentError);
    const guide = await service.open({ type: 'json_schema', schema: SCHEMA });
    for (const id of bytes('{"ok": true, "n": 7}')) expect(await guide.accept([id])).not.toBeNull();
    expect(await guide.accept([eos])).toBeNull();
  });

  it('rejects a grammar xgrammar cannot parse, and malformed choices, with the reason', async () => {
    await expect(service.open({ type: 'grammar', grammar: 'root ::= "a" |' })).rejects.toThrow(/^the grammar is invalid: /);
    await expect(service.open({ type: 'grammar', grammar: 'start ::= "a"' })).rejects.toThrow(/^the grammar is invalid: .*root/);
    await expect(service.open({ type: 'grammar', grammar: ' ' })).rejects.toThrow(/needs the grammar/);
    await expect(service.open({ type: 'choice', choices: [] })).rejects.toThrow(/non-empty list of non-empty strings/);
    await expect(service.open({ type: 'regex', pattern: '((' })).rejects.toThrow(/^the regular expression is invalid: /);
    await expect(service.open({ type: 'regex', pattern: '' })).rejects.toThrow(/needs the pattern/);
    await expect(service.open({ type: 'choice', choices: ['a', ''] })).rejects.toThrow(/non-empty list of non-empty strings/);
    const guide = await service.open({ type: 'choice', choices: ['{}'] });
    for (const id of bytes('{}')) expect(await guide.accept([id])).not.toBeNull();
    expect(await guide.accept([eos])).toBeNull();
  });

  it('rejects formats without a grammar and stop ids it cannot use', async () => {
    await expect(service.open({ type: 'text' })).rejects.toThrow(/needs no grammar/);
    await expect(service.open({ type: 'json_object' }, [vocabSize])).rejects.toThrow(/stop token id .* outside the vocabulary/);
    const noDefaults = GrammarService.create(file, vocabSize);
    await expect(noDefaults.open({ type: 'json_object' })).rejects.toThrow(/at least one stop token/);
    await noDefaults.dispose();
  });

  it('rejects a token outside the mask, naming it; the guide stays where it was', async () => {
    const guide = await service.open({ type: 'json_object' }, [eos, imEnd]);
    expect(allowedIds(guide.mask)).toEqual([brace]);
    const [x] = bytes('x');
    await expect(guide.accept([x])).rejects.toThrow(`token ${x} is not allowed by the response format here`);
    await expect(guide.accept([brace, x])).rejects.toThrow(`token ${x} (token 2 of 2) is not allowed`);
    // '{' of the second call was accepted before 'x' failed: now '}' closes the object.
    const afterBrace = await guide.accept([]);
    expect(afterBrace && allowedIds(afterBrace)).toContain(bytes('}')[0]);
    await expect(guide.accept([vocabSize])).rejects.toThrow(/token id \d+ is outside the vocabulary/);
    const end = await guide.accept([bytes('}')[0]]);
    expect(allowedIds(end!)).toEqual([eos, imEnd]); // complete: only the stop tokens
    expect(await guide.accept([imEnd])).toBeNull();
    await expect(guide.accept([eos])).rejects.toThrow(/already ended with a stop token/);
    guide.close();
    guide.close();
    await expect(guide.accept([brace])).rejects.toThrow(DisposedError);
  });

  it('rejects tokens that follow the stop token in one accept', async () => {
    const guide = await service.open({ type: 'json_object' });
    await expect(guide.accept([brace, bytes('}')[0], eos, brace])).rejects.toThrow(`token ${brace} (token 4 of 4) comes after the stop token`);
    guide.close();
  });

  it('a dying worker rejects waiting calls; the next open starts a new one, and old guides are gone', async () => {
    const s = GrammarService.create(file, vocabSize, [eos]);
    const guide = await s.open({ type: 'json_object' });
    // The call must still be waiting when the worker dies: a fast worker could answer it before terminate() lands, so
    // this one never reaches the worker (its message is dropped).
    const w = workerOf(s, 0)!;
    w.postMessage = () => undefined;
    const waiting = expect(guide.accept([brace])).rejects.toThrow(/grammar worker exited/);
    await w.terminate();
    await waiting;
    await expect(guide.accept([brace])).rejects.toThrow(/worker restarted/);
    const fresh = await s.open({ type: 'json_object' });
    expect(allowedIds(fresh.mask)).toEqual([brace]);
    await s.dispose();
  });

  it('dispose ends the worker: waiting and later calls reject with DisposedError (no restart)', async () => {
    const s = GrammarService.create(file, vocabSize, [eos]);
    const guide = await s.open({ type: 'json_object' });
    const waiting = expect(guide.accept([brace])).rejects.toThrow(DisposedError);
    await s.dispose();
    await waiting;
    await expect(guide.accept([brace])).rejects.toThrow(EngineError);
    await expect(s.open({ type: 'json_object' })).rejects.toThrow(DisposedError);
    guide.close(); // harmless after dispose
    await s.dispose();
  });

  it('an idle worker does not keep the process alive, and a bad tokenizer path fails every open', () => {
    const root = path.resolve(__dirname, '../../../../..');
    const script = `
      const { GrammarService } = require(${JSON.stringify(path.join(__dirname, 'grammar-service.ts'))});
      (async () => {
        const s = GrammarService.create(${JSON.stringify(file)}, ${vocabSize}, [${eos}]);
        const g = await s.open({ type: 'json_object' });
        const missing = GrammarService.create('/nonexistent/tokenizer.json', ${vocabSize}, [${eos}]);
        const err = await missing.open({ type: 'json_object' }).catch((e) => e.message);
        console.log(JSON.stringify({ words: g.mask.length, err }));
      })();`; // no dispose: the process must still exit
    const out = execFileSync(process.execPath, ['--require', path.join(root, 'test/e2e/register.js'), '-e', script], { cwd: root, timeout: 20_000, encoding: 'utf8' });
    const r = JSON.parse(out.trim()) as { words: number; err: string };
    expect(r.words).toBe(Math.ceil(vocabSize / 32));
    expect(r.err).toMatch(/cannot load the tokenizer for response_format \(\/nonexistent\/tokenizer.json\): ENOENT/);
  });
});

describe('GrammarService worker pool', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let tok: Tokenizer;
  let file: string;
  let vocabSize: number;
  let eos: number;
  let brace: number;
  let closers: Set<number>;

  beforeAll(() => {
    tmp = makeTempDir();
    const t = writeTinyTokenizer(tmp.dir, { arch: 'qwen2' });
    tok = Tokenizer.fromDir(tmp.dir);
    file = path.join(tmp.dir, 'tokenizer.json');
    vocabSize = t.vocabSize;
    eos = t.ids['<|endoftext|>'];
    brace = bytes('{')[0];
    closers = new Set([eos]);
    for (let id = 0; id < tok.vocabSize; id++) if (['"', '}', ']'].includes(tok.decode([id]))) closers.add(id);
  });
  afterAll(() => tmp.cleanup());

  it('sizes the pool from LMFLEET_GRAMMAR_WORKERS, else from the cores (two left over, 1 to 4)', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 64].map((cores) => defaultGrammarWorkers({}, cores))).toEqual([1, 1, 1, 2, 3, 4, 4, 4]);
    expect(defaultGrammarWorkers({ LMFLEET_GRAMMAR_WORKERS: '6' }, 2)).toBe(6);
    expect(defaultGrammarWorkers({ LMFLEET_GRAMMAR_WORKERS: ' 1 ' }, 64)).toBe(1);
    expect(defaultGrammarWorkers({ LMFLEET_GRAMMAR_WORKERS: '' }, 8)).toBe(4); // empty: unset
    for (const bad of ['0', '-1', '1.5', 'two']) expect(() => defaultGrammarWorkers({ LMFLEET_GRAMMAR_WORKERS: bad }, 8)).toThrow(/LMFLEET_GRAMMAR_WORKERS must be an integer >= 1/);
    expect(() => GrammarService.create(file, vocabSize, [eos], { workers: 0 })).toThrow(InvalidArgumentError);
    expect(() => GrammarService.create(file, vocabSize, [eos], { workers: 1.5 })).toThrow(/workers must be an integer >= 1/);
    const s = GrammarService.create(file, vocabSize, [eos], { workers: 3 });
    expect(s.stats()).toEqual({ workers: 3, openGuides: [0, 0, 0], running: [false, false, false] });
  });

  it('spreads guides over the workers (fewest open guides, lowest index first), and their walks end in valid JSON', async () => {
    const s = GrammarService.create(file, vocabSize, [eos], { workers: 3 });
    try {
      // One at a time: a closed guide frees its place, so the first worker takes them all and the others never start.
      for (let i = 0; i < 2; i++) (await s.open({ type: 'json_object' })).close();
      expect(s.stats()).toEqual({ workers: 3, openGuides: [0, 0, 0], running: [true, false, false] });

      // Racing opens are counted from the call, so they spread too.
      const guides = await Promise.all([1, 2, 3, 4].map(() => s.open({ type: 'json_schema', schema: SCHEMA })));
      expect(s.stats()).toEqual({ workers: 3, openGuides: [2, 1, 1], running: [true, true, true] });
      const walks = await Promise.all(guides.map((g, i) => walk(g, closers, 100 + i)));
      for (const { tokens, terminated } of walks) {
        expect(terminated).toBe(true);
        expect(tokens[tokens.length - 1]).toBe(eos);
        expect(tok.decode(tokens.slice(0, -1))).toMatch(/^\{"ok": (true|false), "n": -?\d+\}$/);
      }
      expect(s.stats().openGuides).toEqual([0, 0, 0]); // a stop token ends the guide in its worker
      for (const g of guides) g.close();

      // Least loaded first, ties to the lowest index.
      const a = await s.open({ type: 'json_object' });
      const b = await s.open({ type: 'json_object' });
      const c = await s.open({ type: 'json_object' });
      expect(s.stats().openGuides).toEqual([1, 1, 1]);
      b.close();
      const d = await s.open({ type: 'json_object' });
      expect(s.stats().openGuides).toEqual([1, 1, 1]); // b's place, on the second worker
      a.close();
      c.close();
      expect(s.stats().openGuides).toEqual([0, 1, 0]);
      expect(await d.accept([brace])).not.toBeNull();
      d.close();
    } finally {
      await s.dispose();
    }
  });

  it('a dying worker fails only its own calls and guides; the others go on, and the next open on its slot restarts it', async () => {
    const s = GrammarService.create(file, vocabSize, [eos], { workers: 2 });
    try {
      const [g0, g1] = await Promise.all([s.open({ type: 'json_object' }), s.open({ type: 'json_object' })]);
      expect(s.stats().openGuides).toEqual([1, 1]);
      const w0 = workerOf(s, 0)!;
      w0.postMessage = () => undefined; // g0's call is still waiting when its worker dies (see above)
      const waiting = expect(g0.accept([brace])).rejects.toThrow(/grammar worker exited/);
      const other = g1.accept([brace]);
      await w0.terminate();
      await waiting;
      expect(allowedIds((await other)!)).toContain(bytes('}')[0]);
      await expect(g0.accept([brace])).rejects.toThrow(/worker restarted/);
      expect(s.stats()).toEqual({ workers: 2, openGuides: [0, 1], running: [false, true] });
      g0.close(); // harmless: its worker is gone

      const second = workerOf(s, 1);
      const fresh = await s.open({ type: 'json_object' }); // the dead slot has the fewest guides
      expect(s.stats()).toEqual({ workers: 2, openGuides: [1, 1], running: [true, true] });
      expect(workerOf(s, 1)).toBe(second); // the other worker was never restarted
      expect(allowedIds(fresh.mask)).toEqual([brace]);
      for (const id of bytes('{"a": 1}')) expect(await fresh.accept([id])).not.toBeNull();
      expect(await fresh.accept([eos])).toBeNull();
      // g1 kept its matcher through all of it.
      expect(allowedIds((await g1.accept([bytes('}')[0]]))!)).toEqual([eos]);
      expect(await g1.accept([eos])).toBeNull();
      expect(s.stats().openGuides).toEqual([0, 0]);
    } finally {
      await s.dispose();
    }
  });

  it('dispose ends every worker: their waiting and later calls reject with DisposedError', async () => {
    const s = GrammarService.create(file, vocabSize, [eos], { workers: 3 });
    const guides = await Promise.all([1, 2, 3].map(() => s.open({ type: 'json_object' })));
    expect(s.stats().running).toEqual([true, true, true]);
    const exits = [0, 1, 2].map((i) => new Promise((resolve) => workerOf(s, i)!.once('exit', resolve)));
    const waiting = guides.map((g) => expect(g.accept([brace])).rejects.toThrow(DisposedError));
    await s.dispose();
    await Promise.all(waiting);
    await Promise.all(exits);
    expect(s.stats()).toEqual({ workers: 3, openGuides: [0, 0, 0], running: [false, false, false] });
    for (const g of guides) await expect(g.accept([brace])).rejects.toThrow(DisposedError);
    await expect(s.open({ type: 'json_object' })).rejects.toThrow(DisposedError);
    for (const g of guides) g.close(); // harmless after dispose
    await s.dispose();
  });

  it('an idle pool does not keep the process alive', () => {
    const root = path.resolve(__dirname, '../../../../..');
    const script = `
      const { GrammarService } = require(${JSON.stringify(path.join(__dirname, 'grammar-service.ts'))});
      (async () => {
        const s = GrammarService.create(${JSON.stringify(file)}, ${vocabSize}, [${eos}], { workers: 2 });
        const [a, b] = await Promise.all([s.open({ type: 'json_object' }), s.open({ type: 'json_object' })]);
        await Promise.all([a.accept([${brace}]), b.accept([${brace}])]);
        console.log(JSON.stringify(s.stats()));
      })();`; // no dispose: the process must still exit
    const out = execFileSync(process.execPath, ['--require', path.join(root, 'test/e2e/register.js'), '-e', script], { cwd: root, timeout: 20_000, encoding: 'utf8' });
    expect(JSON.parse(out.trim())).toEqual({ workers: 2, openGuides: [1, 1], running: [true, true] });
  });
});
