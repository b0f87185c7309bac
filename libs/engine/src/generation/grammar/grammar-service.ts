// Guided decoding for OpenAI's response_format (JSON mode and JSON-schema structured outputs). xgrammar, compiled to
// WASM (@mlc-ai/web-xgrammar), says after every token which tokens keep the output inside the grammar. It runs in a
// pool of worker threads (grammar-worker.ts) so that compiling a schema or computing a mask never stalls the engine's
// event loop, and the masks of a batch's guided requests are computed in parallel; this side places each guide on a
// worker, numbers each call and matches the worker's answers to them.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { DisposedError, EngineError, InvalidArgumentError } from '../../errors';
import { byteLevelAlphabet } from '../../tokenizer/byte-level';

/** OpenAI's response_format as the engine takes it (json_schema: the schema itself, not OpenAI's wrapper object), and
 *  vLLM's other guided outputs: `grammar` (an EBNF grammar in xgrammar's dialect, GBNF-like, whose start rule is
 *  `root`; vLLM's guided_grammar), `choice` (exactly one of the strings; vLLM's guided_choice) and `regex` (the whole
 *  output matches the regular expression; vLLM's guided_regex, LMDeploy's regex_schema). */
export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; schema: Record<string, unknown> | string; strict?: boolean; name?: string }
  | { type: 'grammar'; grammar: string }
  | { type: 'choice'; choices: string[] }
  | { type: 'regex'; pattern: string };

/** One guided output: the tokens allowed next, as a bitmask (bit j of word i allows token 32·i + j). */
export interface GuideHandle {
  /** The tokens allowed first. */
  readonly mask: Uint32Array;
  /** Feeds the sampled tokens, in order; resolves to the next mask, or null once a stop token ended the output.
   *  Rejects when a token is not allowed (the guide stays where the last allowed token left it). */
  accept(tokens: number[]): Promise<Uint32Array | null>;
  /** Frees the matcher in the worker; idempotent, and harmless after the service is disposed. */
  close(): void;
}

/** How xgrammar decodes a token string to the text it stands for (its TokenizerInfo vocab types). */
export type VocabType = 'byte_level' | 'byte_fallback' | 'raw';

export interface GrammarVocab {
  /** Token strings by id, `vocabSize` long; '' for ids the grammar must never emit as text (specials, padding). */
  vocab: string[];
  vocabType: VocabType;
  prependSpace: boolean;
}

// ---- worker protocol ----

/** A response format as the worker compiles it: the schema as JSON text and strictness decided; grammars and choices
 *  as EBNF text (start rule `root`). */
export type GrammarFormat =
  | { type: 'json_object' }
  | { type: 'json_schema'; schema: string; strict: boolean }
  | { type: 'ebnf'; grammar: string }
  | { type: 'regex'; pattern: string };

export type WorkerRequest =
  | { seq: number; op: 'init'; tokenizerJsonPath: string; vocabSize: number; stopIds: number[] }
  | { seq: number; op: 'open'; matcherId: number; format: GrammarFormat; stopIds: number[] }
  | { seq: number; op: 'accept'; matcherId: number; tokens: number[] }
  | { seq: number; op: 'close'; matcherId: number };

export type WorkerReply =
  | { seq: number; ok: true; mask?: Int32Array; terminated?: boolean }
  /** invalidFormat: xgrammar refused the response format itself (the caller's schema), not an internal failure. */
  | { seq: number; ok: false; error: string; invalidFormat?: boolean };

type Unsequenced<T> = T extends unknown ? Omit<T, 'seq'> : never;
type Success = Extract<WorkerReply, { ok: true }>;

interface Pending {
  resolve: (reply: Success) => void;
  reject: (err: Error) => void;
}

// ---- vocab from tokenizer.json ----

const SP_SPACE = '\u2581';

type JsonObject = Record<string, unknown>;

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A normalizer / pre-tokenizer / decoder and, when it is a Sequence, its members. */
function members(node: unknown, listKey: string): JsonObject[] {
  if (!isObject(node)) return [];
  const list = node.type === 'Sequence' ? node[listKey] : undefined;
  return Array.isArray(list) ? [node, ...list.flatMap((n) => members(n, listKey))] : [node];
}


/**
 * The vocabulary xgrammar needs, from a Hugging Face tokenizer.json: token strings by id (model.vocab, BPE/WordPiece
 * object or Unigram [token, score] list, then added_tokens), how to decode them, and whether encoding prepends a space.
 * Special added tokens become '' — xgrammar's mark for "never text": otherwise `<|im_start|>` would be allowed inside
 * a JSON string and the detokenizer (skipping specials) would drop it. Stop tokens are still allowed where the grammar
 * can end: the matcher gets them by id.
 */
export function grammarVocab(tokenizerJson: unknown, vocabSize: number, opts: { controlCharacters?: boolean } = {}): GrammarVocab {
  if (!isObject(tokenizerJson) || !isObject(tokenizerJson.model)) throw new Error('tokenizer.json has no "model" object');
  const model = tokenizerJson.model;
  const decoders = members(tokenizerJson.decoder, 'decoders');
  const preTokenizers = members(tokenizerJson.pre_tokenizer, 'pretokenizers');
  const normalizers = members(tokenizerJson.normalizer, 'normalizers');

  let vocabType: VocabType = 'raw';
  if ([...decoders, ...preTokenizers].some((n) => n.type === 'ByteLevel')) vocabType = 'byte_level';
  else if (
    model.byte_fallback === true ||
    // SentencePiece-style spaces without byte pieces (Unigram without byte_fallback): xgrammar's byte_fallback
    // decoding is the one that turns '▁' back into a space; 'raw' would keep it literal.
    decoders.some((d) => d.type === 'ByteFallback' || d.type === 'Metaspace' || (d.type === 'Replace' && isObject(d.pattern) && d.pattern.String === SP_SPACE))
  ) {
    vocabType = 'byte_fallback';
  }
  const prependSpace =
    normalizers.some((n) => n.type === 'Prepend' && n.prepend === SP_SPACE) ||
    preTokenizers.some(
      (p) => p.type === 'Metaspace' && (p.prepend_scheme === 'always' || p.prepend_scheme === 'first' || (p.prepend_scheme === undefined && p.add_prefix_space === true)),
    );

  const vocab: string[] = new Array(vocabSize).fill('');
  const put = (token: unknown, id: unknown) => {
    if (typeof token === 'string' && Number.isInteger(id) && (id as number) >= 0 && (id as number) < vocabSize) vocab[id as number] = token;
  };
  if (Array.isArray(model.vocab)) model.vocab.forEach((entry, id) => put(Array.isArray(entry) ? entry[0] : undefined, id));
  else if (isObject(model.vocab)) for (const [token, id] of Object.entries(model.vocab)) put(token, id);
  else throw new Error('tokenizer.json model.vocab is neither an object nor a list');

  const added = Array.isArray(tokenizerJson.added_tokens) ? tokenizerJson.added_tokens.filter(isObject) : [];
  const chars = vocabType === 'byte_level' ? byteLevelAlphabet() : undefined;
  for (const t of added) {
    if (typeof t.content !== 'string') continue;
    if (t.special === true) put('', t.id);
    // An added token's content is the text itself; in a byte-level vocab xgrammar expects it written byte-level.
    else if (chars && vocab[t.id as number] !== t.content) put([...Buffer.from(t.content, 'utf8')].map((b) => chars[b]).join(''), t.id);
    else put(t.content, t.id);
  }
  // xgrammar's JSON strings exclude only \r and \n of the control characters, but JSON forbids all of U+0000-U+001F
  // unescaped (JSON.parse refuses them), and the one-line output needs none between values: tokens whose text holds
  // one are never allowed (a weak model otherwise fills strings with them). Grammars (controlCharacters) keep them:
  // theirs may need a newline or a tab.
  if (opts.controlCharacters) return { vocab, vocabType, prependSpace };
  const controlByte = vocabType === 'byte_level' ? new Set(byteLevelAlphabet().slice(0, 0x20)) : undefined;
  for (let id = 0; id < vocabSize; id++) {
    const t = vocab[id];
    if (t && (controlByte ? [...t].some((c) => controlByte.has(c)) : hasControlText(t, vocabType))) vocab[id] = '';
  }
  return { vocab, vocabType, prependSpace };
}

/** A raw or byte-fallback token whose text has a control character (byte-fallback: also a `<0x00>`-`<0x1F>` piece). */
function hasControlText(token: string, vocabType: VocabType): boolean {
  if (vocabType === 'byte_fallback' && /^<0x[01][0-9A-Fa-f]>$/.test(token)) return true;
  for (let i = 0; i < token.length; i++) if (token.charCodeAt(i) < 0x20) return true;
  return false;
}

// ---- the service ----

/** The response format as the worker compiles it; rejects formats that need no grammar or are malformed. */
function grammarFormat(format: ResponseFormat): GrammarFormat {
  switch (format?.type) {
    case 'json_object':
      return { type: 'json_object' };
    case 'json_schema': {
      const schema = typeof format.schema === 'string' ? format.schema : JSON.stringify(format.schema);
      if (typeof schema !== 'string') throw new InvalidArgumentError('response_format json_schema needs a schema (an object or its JSON text)');
      return { type: 'json_schema', schema, strict: format.strict !== false };
    }
    case 'grammar':
      if (typeof format.grammar !== 'string' || format.grammar.trim() === '') throw new InvalidArgumentError('a grammar response format needs the grammar (EBNF text, start rule root)');
      return { type: 'ebnf', grammar: format.grammar };
    case 'choice': {
      const { choices } = format;
      if (!Array.isArray(choices) || choices.length === 0 || !choices.every((c) => typeof c === 'string' && c !== ''))
        throw new InvalidArgumentError('a choice response format needs a non-empty list of non-empty strings');
      return { type: 'ebnf', grammar: choiceGrammar(choices) };
    }
    case 'regex':
      if (typeof format.pattern !== 'string' || format.pattern === '') throw new InvalidArgumentError('a regex response format needs the pattern (a non-empty string)');
      return { type: 'regex', pattern: format.pattern };
    case 'text':
      throw new InvalidArgumentError('response_format "text" needs no grammar; guide only json_object, json_schema, grammar, choice or regex');
    default:
      throw new InvalidArgumentError(`response_format.type must be json_object or json_schema, got ${JSON.stringify((format as { type?: unknown })?.type)}`);
  }
}

/** `root ::= "a" | "b"`: EBNF string literals take JSON's escapes (\", \\, \n, \uXXXX). */
export function choiceGrammar(choices: string[]): string {
  return `root ::= ${choices.map((c) => JSON.stringify(c)).join(' | ')}`;
}

/** The folder with the monorepo's package.json (name "lmfleet"): where the TypeScript require hook lives. */
function repoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: unknown }).name === 'lmfleet') return dir;
    if (path.dirname(dir) === dir) throw new Error(`no lmfleet package.json above ${__dirname}`);
  }
}

/**
 * Starts grammar-worker beside this file. From the compiled dist it is plain JavaScript; from source (jest, or apps
 * run with `node --require test/e2e/register.js`) the worker thread gets the same TypeScript require hook first,
 * since a worker does not inherit the parent's hooks.
 */
function startWorker(): Worker {
  const ext = path.extname(__filename);
  const file = path.join(__dirname, `grammar-worker${ext}`);
  const hook = ext === '.ts' ? `require(${JSON.stringify(path.join(repoRoot(), 'test/e2e/register.js'))});` : '';
  return new Worker(`${hook}require(${JSON.stringify(file)});`, { eval: true });
}

const toMask = (mask: Int32Array | undefined): Uint32Array => {
  if (!mask) throw new EngineError('grammar worker answered without a token mask');
  return new Uint32Array(mask.buffer, mask.byteOffset, mask.length);
};

/** Options of `GrammarService.create`. */
export interface GrammarServiceOptions {
  /** Worker threads in the pool (an integer >= 1); default: `defaultGrammarWorkers()`. */
  workers?: number;
}

/** What the pool is doing, for diagnostics and tests. */
export interface GrammarServiceStats {
  /** Pool size: worker slots, started or not. */
  workers: number;
  /** Guides open (or opening) on each slot. */
  openGuides: number[];
  /** Whether each slot has a worker thread now (slots start on first use, and again after their worker died). */
  running: boolean[];
}

/**
 * The pool size when `create` is given none: LMFLEET_GRAMMAR_WORKERS if set (an integer >= 1), else the cores left
 * after two (the engine's event loop and the native engine's host thread), between 1 and 4.
 */
export function defaultGrammarWorkers(env: NodeJS.ProcessEnv = process.env, parallelism: number = os.availableParallelism()): number {
  const raw = env.LMFLEET_GRAMMAR_WORKERS;
  if (raw !== undefined && raw.trim() !== '') {
    const n = /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(n) || n < 1) throw new EngineError(`LMFLEET_GRAMMAR_WORKERS must be an integer >= 1, got ${JSON.stringify(raw)}`);
    return n;
  }
  return Math.max(1, Math.min(4, parallelism - 2));
}

type InitRequest = Unsequenced<Extract<WorkerRequest, { op: 'init' }>>;

/**
 * One worker thread of the pool, started on first use: numbers its calls and matches the worker's answers to them.
 * If the worker dies, its waiting calls reject, its guides are gone (`generation` moves on) and the next `start`
 * starts a new one.
 */
class WorkerSlot {
  worker?: Worker;
  /** init on the current worker: rejects (for every open on that worker) when the tokenizer cannot be loaded. */
  private ready?: Promise<void>;
  private readonly pending = new Map<number, Pending>();
  private nextSeq = 1;
  /** Bumped when the worker goes away: guides carry the generation they were opened on. */
  generation = 0;
  /** Guides open or opening on the current worker (identity tokens); cleared when it goes away. */
  readonly guides = new Set<object>();
  private disposed = false;

  constructor(private readonly init: InitRequest) {}

  /** Starts the worker if none runs; resolves once it has loaded the tokenizer. */
  start(): Promise<void> {
    if (this.disposed) return Promise.reject(new DisposedError('grammar service'));
    if (!this.worker) {
      this.worker = this.spawn();
      this.ready = this.call(this.init).then(() => undefined);
    }
    return this.ready!;
  }

  call(req: Unsequenced<WorkerRequest>): Promise<Success> {
    if (this.disposed) return Promise.reject(new DisposedError('grammar service'));
    const worker = this.worker;
    if (!worker) return Promise.reject(new EngineError('grammar worker exited'));
    const seq = this.nextSeq++;
    return new Promise<Success>((resolve, reject) => {
      // Referenced only while a caller waits, so an idle worker never keeps the process alive.
      if (this.pending.size === 0) worker.ref();
      this.pending.set(seq, { resolve, reject });
      worker.postMessage({ ...req, seq });
    });
  }

  /** Stops the worker; waiting calls and every later call reject with DisposedError. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.guides.clear();
    this.failPending(new DisposedError('grammar service'));
    const worker = this.worker;
    this.worker = undefined;
    this.ready = undefined;
    if (worker) await worker.terminate();
  }

  private spawn(): Worker {
    const worker = startWorker();
    worker.unref();
    let crash: Error | undefined;
    worker.on('message', (reply: WorkerReply) => {
      const p = this.pending.get(reply.seq);
      if (!p) return;
      this.pending.delete(reply.seq);
      if (this.pending.size === 0) worker.unref();
      if (reply.ok) p.resolve(reply);
      // Only a json_schema or a grammar can be invalid: json_object compiles one fixed schema. The worker's message
      // says which.
      else if (reply.invalidFormat) p.reject(new InvalidArgumentError(reply.error));
      else p.reject(new EngineError(reply.error));
    });
    worker.on('error', (err) => (crash = err));
    worker.on('exit', (code) => {
      if (this.worker !== worker) return; // terminated by dispose
      this.worker = undefined;
      this.ready = undefined;
      this.generation++;
      this.guides.clear();
      this.failPending(new EngineError(`grammar worker exited (code ${code})${crash ? `: ${crash.message}` : ''}`));
    });
    return worker;
  }

  private failPending(err: Error): void {
    const waiting = [...this.pending.values()];
    this.pending.clear();
    for (const p of waiting) p.reject(err);
  }
}

/**
 * Guides outputs to a response format. One per tokenizer, with a pool of worker threads (computing a mask takes up
 * to ~0.7 ms with a large vocabulary, per token of every guided request): each guide lives on the worker that had
 * the fewest open guides when it opened, and all its calls go there. A worker starts when its slot is first used
 * (loading xgrammar and the vocabulary takes ~0.1 s for a small vocabulary), keeps its own compiled grammars, and
 * never keeps the process alive while no call is waiting. If a worker dies, its waiting calls reject, its guides are
 * gone, and the next `open` placed on its slot starts a new one; the other workers go on. After `dispose`, every
 * call rejects with DisposedError.
 */
export class GrammarService {
  private readonly slots: WorkerSlot[];
  private nextMatcherId = 1;
  private disposed = false;

  private constructor(
    tokenizerJsonPath: string,
    private readonly vocabSize: number,
    private readonly defaultStopIds: readonly number[],
    workers: number,
  ) {
    const init: InitRequest = { op: 'init', tokenizerJsonPath, vocabSize, stopIds: [...defaultStopIds] };
    this.slots = Array.from({ length: workers }, () => new WorkerSlot(init));
  }

  /**
   * @param vocabSize the model's vocabulary (logits) size: masks have ceil(vocabSize / 32) words; ids the tokenizer
   *   does not define are never allowed.
   * @param defaultStopIds stop tokens for `open` calls that give none.
   * @param options.workers the pool size; default `defaultGrammarWorkers()` (LMFLEET_GRAMMAR_WORKERS, or by cores).
   */
  static create(tokenizerJsonPath: string, vocabSize: number, defaultStopIds: number[] = [], options: GrammarServiceOptions = {}): GrammarService {
    if (!Number.isInteger(vocabSize) || vocabSize <= 0) throw new InvalidArgumentError(`vocabSize must be a positive integer, got ${vocabSize}`);
    const workers = options.workers ?? defaultGrammarWorkers();
    if (!Number.isSafeInteger(workers) || workers < 1) throw new InvalidArgumentError(`workers must be an integer >= 1, got ${workers}`);
    return new GrammarService(path.resolve(tokenizerJsonPath), vocabSize, [...defaultStopIds], workers);
  }

  /**
   * Compiles the format (cached per format and worker) and starts a matcher for one output. A stop token is allowed
   * only where the JSON is complete, and accepting it ends the guide. Rejects with InvalidArgumentError for a schema
   * xgrammar cannot use, with its reason.
   */
  async open(format: ResponseFormat, stopIds: readonly number[] = this.defaultStopIds): Promise<GuideHandle> {
    if (this.disposed) throw new DisposedError('grammar service');
    const compiled = grammarFormat(format);
    const stops = stopIds.length > 0 ? [...stopIds] : [...this.defaultStopIds];
    if (stops.length === 0) throw new InvalidArgumentError('a response_format guide needs at least one stop token id to end the output');
    this.checkTokens(stops, 'stop token id');
    const slot = this.leastLoaded();
    // Counted from now, so that opens racing each other spread over the pool.
    const lease = {};
    slot.guides.add(lease);
    let started: number;
    let mask: Uint32Array;
    const matcherId = this.nextMatcherId++;
    try {
      // Again if the worker died after loading the tokenizer but before this continuation ran.
      do {
        started = slot.generation;
        await slot.start();
      } while (started !== slot.generation);
      slot.guides.add(lease); // a no-op unless the worker it was counted on went away meanwhile
      mask = toMask((await slot.call({ op: 'open', matcherId, format: compiled, stopIds: stops })).mask);
    } catch (err) {
      slot.guides.delete(lease);
      throw err;
    }
    const generation = started;
    return new Guide(mask, {
      accept: async (tokens) => {
        if (generation !== slot.generation) throw new EngineError('the grammar worker restarted since this guide was opened; the guide is gone');
        this.checkTokens(tokens, 'token id');
        const r = await slot.call({ op: 'accept', matcherId, tokens: [...tokens] });
        if (!r.terminated) return toMask(r.mask);
        slot.guides.delete(lease); // the worker freed the matcher
        return null;
      },
      close: () => {
        slot.guides.delete(lease);
        if (this.disposed || generation !== slot.generation || !slot.worker) return;
        // Nothing waits on it: an error (the matcher is already gone) changes nothing.
        slot.call({ op: 'close', matcherId }).catch(() => undefined);
      },
    });
  }

  /** Stops every worker; waiting calls and every later call reject with DisposedError. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await Promise.all(this.slots.map((slot) => slot.dispose()));
  }

  /** Pool size, open guides and running workers per slot. */
  stats(): GrammarServiceStats {
    return { workers: this.slots.length, openGuides: this.slots.map((s) => s.guides.size), running: this.slots.map((s) => s.worker !== undefined) };
  }

  /** The slot with the fewest open guides; the lowest index among equals. */
  private leastLoaded(): WorkerSlot {
    let best = this.slots[0];
    for (const slot of this.slots) if (slot.guides.size < best.guides.size) best = slot;
    return best;
  }

  private checkTokens(ids: readonly number[], what: string): void {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new InvalidArgumentError(`${what} ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    }
  }
}

class Guide implements GuideHandle {
  private state: 'open' | 'terminated' | 'closed' = 'open';

  constructor(
    readonly mask: Uint32Array,
    private readonly ops: { accept(tokens: number[]): Promise<Uint32Array | null>; close(): void },
  ) {}

  async accept(tokens: number[]): Promise<Uint32Array | null> {
    if (this.state === 'closed') throw new DisposedError('response_format guide');
    if (this.state === 'terminated') throw new InvalidArgumentError('the response_format guide already ended with a stop token');
    const mask = await this.ops.accept(tokens);
    if (mask === null && this.state === 'open') this.state = 'terminated';
    return mask;
  }

  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.ops.close();
  }
}
