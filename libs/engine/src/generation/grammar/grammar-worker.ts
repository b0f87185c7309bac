// Runs in the worker thread GrammarService starts: owns xgrammar's WASM instance, compiles response formats and keeps
// one GrammarMatcher per open guide. Messages are handled one at a time, in arrival order, so a guide's accepts apply
// in the order the engine sent them.
import * as fs from 'node:fs';
import NodeModule from 'node:module';
import * as path from 'node:path';
import { parentPort } from 'node:worker_threads';
import type * as Xgrammar from '@mlc-ai/web-xgrammar';
import { grammarVocab, type GrammarFormat, type GrammarVocab, type WorkerReply, type WorkerRequest } from './grammar-service';
import { UTF8_START, Utf8Guard } from './utf8-guard';

type XgrammarModule = typeof Xgrammar;

/** Node's CommonJS loader internals used to compile xgrammar's bundle as CommonJS. */
interface CjsModule {
  filename: string;
  paths: string[];
  exports: unknown;
  _compile(source: string, filename: string): void;
}
const Loader = NodeModule as unknown as { new (id: string, parent?: unknown): CjsModule; _nodeModulePaths(dir: string): string[] };

/** Compiled grammars kept per format; evicted ones are freed (their open matchers keep what they need). */
const MAX_COMPILED = 32;
/** One-line JSON as json.dumps writes it: `{"ok": false, "n": 5}`. Free whitespace would let a weak model emit
 *  spaces forever. */
const SEPARATORS: [string, string] = [', ', ': '];

// xgrammar says why it failed (a bad schema, ...) only on stderr, just before the WASM aborts: the JS error itself is
// "Aborted()". Its printErr is console.error as it is when an instance starts, so collect what it prints during a call.
const printErr = console.error.bind(console);
let captured: string[] | undefined;
console.error = (...args: unknown[]) => {
  if (captured) captured.push(args.map(String).join(' '));
  else printErr(...args);
};

/** xgrammar aborted (or trapped): the instance's stack and heap are left as they were at the abort. */
class XgrammarAbort extends Error {}
/** The response format itself is unusable: the caller's schema, not an internal failure. */
class FormatError extends Error {}

/** `[FATAL] …/json_schema_converter.cc:885: Check failed: (…) is false: Type should be a string` → the last part. */
function abortReason(lines: string[], err: Error): string {
  const fatal = lines.filter((l) => l.startsWith('[FATAL]')).pop();
  if (!fatal) return err.message;
  return fatal.replace(/^\[FATAL\] \S+:\d+: /, '').replace(/^Check failed: \(.*?\) is false:\s*/, '');
}

async function guarded<T>(fn: () => T | Promise<T>): Promise<T> {
  const lines: string[] = [];
  captured = lines;
  let result: T;
  try {
    result = await fn();
  } catch (err) {
    if (err instanceof Error && err.name === 'RuntimeError') throw new XgrammarAbort(abortReason(lines, err));
    throw err;
  } finally {
    captured = undefined;
  }
  for (const line of lines) printErr(line); // warnings of a call that went through
  return result;
}

let bundle: { file: string; source: string } | undefined;

/**
 * A fresh xgrammar: the package's lib/index.js is a UMD bundle in a package marked "type": "module", so neither
 * require nor import() yields its exports; compiled here as CommonJS it does. Each compile is a new WASM instance.
 */
function loadXgrammar(): XgrammarModule {
  if (!bundle) {
    const file = path.join(path.dirname(require.resolve('@mlc-ai/web-xgrammar/package.json')), 'lib', 'index.js');
    bundle = { file, source: fs.readFileSync(file, 'utf8') };
  }
  const m = new Loader(bundle.file, module);
  m.filename = bundle.file;
  m.paths = Loader._nodeModulePaths(path.dirname(bundle.file));
  m._compile(bundle.source, bundle.file);
  return m.exports as XgrammarModule;
}

/**
 * One xgrammar instance with the tokenizer loaded. An abort does not unwind the WASM stack: after a few dozen (34 in
 * a measurement) the instance corrupts memory, so the first abort retires it (`broken`) and the next open gets a new
 * one. Guides already open keep their instance, which has stack to spare for them.
 */
class Runtime {
  broken = false;
  private readonly compiled = new Map<string, Xgrammar.CompiledGrammar>();

  /** Grammars' compiler: its vocabulary keeps the control-character tokens (started on the first grammar). */
  private textCompiler?: Xgrammar.GrammarCompiler;

  private constructor(
    readonly xg: XgrammarModule,
    private readonly compiler: Xgrammar.GrammarCompiler,
    private readonly tok: Tokenizer,
  ) {}

  static async create(tok: Tokenizer): Promise<Runtime> {
    const xg = loadXgrammar();
    return new Runtime(xg, await Runtime.compilerOf(xg, tok, tok.json.vocab), tok);
  }

  private static async compilerOf(xg: XgrammarModule, tok: Tokenizer, v: GrammarVocab): Promise<Xgrammar.GrammarCompiler> {
    const { vocabSize, stopIds } = tok;
    const info = await guarded(() =>
      xg.TokenizerInfo.createTokenizerInfo(v.vocab, v.vocabType, v.prependSpace, vocabSize, stopIds.length > 0 ? stopIds : undefined),
    );
    // No compiler cache: xgrammar's is unbounded, and after a compile aborts, compiling the same schema again waits
    // forever on the entry the first one left pending. The compiler keeps its own reference to the tokenizer info.
    const compiler = await guarded(() => xg.GrammarCompiler.createGrammarCompiler(info, false));
    info.dispose();
    return compiler;
  }

  /** Runs an xgrammar call; an abort retires this instance. */
  async run<T>(fn: () => T | Promise<T>): Promise<T> {
    try {
      return await guarded(fn);
    } catch (err) {
      if (err instanceof XgrammarAbort) this.broken = true;
      throw err;
    }
  }

  async compile(format: GrammarFormat): Promise<Xgrammar.CompiledGrammar> {
    const key = formatKey(format);
    const hit = this.compiled.get(key);
    if (hit) {
      this.compiled.delete(key);
      this.compiled.set(key, hit);
      return hit;
    }
    let compiled: Xgrammar.CompiledGrammar;
    if (usesTextVocab(format)) {
      this.textCompiler ??= await this.run(() => Runtime.compilerOf(this.xg, this.tok, textFlavour(this.tok).vocab));
      const compiler = this.textCompiler;
      try {
        // a regex: xgrammar's own regex converter, through a structural tag whose whole output is the pattern
        compiled = await this.run(() =>
          format.type === 'ebnf'
            ? compiler.compileGrammar(format.grammar, 'root')
            : compiler.compileStructuralTag({ type: 'structural_tag', format: { type: 'regex', pattern: format.pattern } }),
        );
      } catch (err) {
        const what = format.type === 'ebnf' ? 'the grammar' : 'the regular expression';
        throw err instanceof XgrammarAbort ? new FormatError(`${what} is invalid: ${err.message}`) : err;
      }
    } else {
      let schema = '{"type": "object"}';
      if (format.type === 'json_schema') {
        try {
          JSON.parse(format.schema);
        } catch (err) {
          throw new FormatError(`response_format's JSON schema is invalid: the schema is not valid JSON (${(err as Error).message})`);
        }
        schema = format.schema;
      }
      // json_object: any object, so not strict (strict forbids properties the schema does not name).
      const strict = format.type === 'json_schema' && format.strict;
      try {
        compiled = await this.run(() => this.compiler.compileJSONSchema(schema, false, -1, SEPARATORS, strict));
      } catch (err) {
        throw err instanceof XgrammarAbort ? new FormatError(`response_format's JSON schema is invalid: ${err.message}`) : err;
      }
    }
    this.compiled.set(key, compiled);
    if (this.compiled.size > MAX_COMPILED) {
      const [oldestKey, oldest] = this.compiled.entries().next().value as [string, Xgrammar.CompiledGrammar];
      this.compiled.delete(oldestKey);
      oldest.dispose();
    }
    return compiled;
  }
}

interface Guide {
  matcher: Xgrammar.GrammarMatcher;
  runtime: Runtime;
  /** The vocabulary its grammar was compiled with: JSON's (no control characters) or grammars' (all text tokens). */
  flavour: Flavour;
  /** Where the output's bytes stand in UTF-8 (utf8-guard.ts): the mask keeps only tokens that continue valid text. */
  utf8: number;
}

/** A vocabulary as xgrammar gets it, and the UTF-8 guard over the same token strings. */
interface Flavour {
  vocab: GrammarVocab;
  utf8: Utf8Guard;
}

interface Tokenizer {
  /** tokenizer.json, parsed: grammars' vocabulary is made from it on first use. */
  source: unknown;
  vocabSize: number;
  stopIds: number[];
  json: Flavour;
  text?: Flavour;
}

/** The compiled-grammar cache's key of a format. */
function formatKey(f: GrammarFormat): string {
  switch (f.type) {
    case 'json_object':
      return 'json_object';
    case 'json_schema':
      return `${f.strict ? 'strict' : 'loose'}:${f.schema}`;
    case 'ebnf':
      return `ebnf:${f.grammar}`;
    case 'regex':
      return `regex:${f.pattern}`;
  }
}

/** Grammars and regular expressions compile against the text vocabulary (control characters kept); JSON against JSON's. */
const usesTextVocab = (f: GrammarFormat): f is Extract<GrammarFormat, { type: 'ebnf' | 'regex' }> => f.type === 'ebnf' || f.type === 'regex';

function textFlavour(tok: Tokenizer): Flavour {
  if (!tok.text) {
    const vocab = grammarVocab(tok.source, tok.vocabSize, { controlCharacters: true });
    tok.text = { vocab, utf8: new Utf8Guard(vocab) };
  }
  return tok.text;
}

let tokenizer: Tokenizer | undefined;
let runtime: Runtime | undefined;
const guides = new Map<number, Guide>();

async function currentRuntime(): Promise<Runtime> {
  if (!tokenizer) throw new Error('the grammar worker has no tokenizer (init did not run)');
  if (!runtime || runtime.broken) runtime = await Runtime.create(tokenizer);
  return runtime;
}

function guideOf(matcherId: number): Guide {
  const guide = guides.get(matcherId);
  if (!guide) throw new Error(`no open guide ${matcherId} (closed, or ended by a stop token)`);
  return guide;
}

async function nextMask(guide: Guide): Promise<Int32Array> {
  const mask = await guide.runtime.run(() => guide.matcher.getNextTokenBitmask());
  // xgrammar can leave bits set past the vocabulary in the last word (ids that do not exist): clear them.
  const tail = tokenizer!.vocabSize % 32;
  if (tail !== 0) mask[mask.length - 1] &= ~(-1 << tail);
  guide.flavour.utf8.restrict(mask, guide.utf8);
  return mask;
}

type Answer = Omit<Extract<WorkerReply, { ok: true }>, 'seq' | 'ok'>;

async function handle(req: WorkerRequest): Promise<Answer> {
  switch (req.op) {
    case 'init': {
      let vocab: GrammarVocab;
      let source: unknown;
      try {
        source = JSON.parse(fs.readFileSync(req.tokenizerJsonPath, 'utf8'));
        vocab = grammarVocab(source, req.vocabSize);
      } catch (err) {
        throw new Error(`cannot load the tokenizer for response_format (${req.tokenizerJsonPath}): ${(err as Error).message}`);
      }
      tokenizer = { source, vocabSize: req.vocabSize, stopIds: req.stopIds, json: { vocab, utf8: new Utf8Guard(vocab) } };
      runtime = undefined;
      await currentRuntime();
      return {};
    }
    case 'open': {
      const rt = await currentRuntime();
      const compiled = await rt.compile(req.format);
      const matcher = await rt.run(() => rt.xg.GrammarMatcher.createGrammarMatcher(compiled, req.stopIds));
      const guide: Guide = { matcher, runtime: rt, flavour: usesTextVocab(req.format) ? textFlavour(tokenizer!) : tokenizer!.json, utf8: UTF8_START };
      const mask = await nextMask(guide);
      guides.set(req.matcherId, guide);
      return { mask };
    }
    case 'accept': {
      const guide = guideOf(req.matcherId);
      try {
        for (let i = 0; i < req.tokens.length; i++) {
          const token = req.tokens[i];
          const where = req.tokens.length > 1 ? ` (token ${i + 1} of ${req.tokens.length})` : '';
          if (guide.matcher.isTerminated()) throw new Error(`token ${token}${where} comes after the stop token that ended the output`);
          if (!(await guide.runtime.run(() => guide.matcher.acceptToken(token)))) {
            throw new Error(`token ${token}${where} is not allowed by the response format here`);
          }
          // -1 only for a token the mask did not offer (xgrammar took it): start over at a character boundary
          guide.utf8 = Math.max(UTF8_START, guide.flavour.utf8.after(guide.utf8, token));
        }
        if (guide.matcher.isTerminated()) {
          // Nothing follows a stop token (asking xgrammar for a mask now would abort): free the matcher already.
          guides.delete(req.matcherId);
          guide.matcher.dispose();
          return { terminated: true };
        }
        return { mask: await nextMask(guide) };
      } catch (err) {
        if (err instanceof XgrammarAbort) guides.delete(req.matcherId); // its instance is retired with it
        throw err;
      }
    }
    case 'close': {
      const guide = guides.get(req.matcherId);
      guides.delete(req.matcherId);
      if (guide) await guide.runtime.run(() => guide.matcher.dispose());
      return {};
    }
  }
}

const port = parentPort;
if (!port) throw new Error('grammar-worker runs in a worker thread (GrammarService starts it)');
let queue = Promise.resolve();
port.on('message', (req: WorkerRequest) => {
  queue = queue.then(async () => {
    let reply: WorkerReply;
    try {
      reply = { seq: req.seq, ok: true, ...(await handle(req)) };
    } catch (err) {
      reply = { seq: req.seq, ok: false, error: (err as Error).message ?? String(err), invalidFormat: err instanceof FormatError };
    }
    // The mask is xgrammar's copy out of WASM memory, a plain ArrayBuffer of its own: moved, not cloned.
    port.postMessage(reply, reply.ok && reply.mask ? [reply.mask.buffer as ArrayBuffer] : []);
  });
});
