// Loads the native addon and returns the NativeModule typed in ./types.ts.
// - Binaries live in <repo>/libs/native/build/<variant>/Release/*.node (built by scripts/build.js). They are
//   found by walking up from this file's folder, so this works from libs/native/src (jest, ts-node) and from
//   a compiled dist/libs/native/src alike. LMFLEET_NATIVE_DIR may point at another libs/native folder.
// - backend 'auto' tries cuda (visible GPU + binary present + loads + reports available), then cpu, and logs
//   why it fell back; 'cuda' that cannot load throws NativeError E_BACKEND_UNAVAILABLE with the reason.
// - Every error from native code is a NativeError with a stable `code` (NativeErrorCode).
import * as fs from 'node:fs';
import * as path from 'node:path';

import type {
  AwqSessionConfig,
  NativeAwqSession,
  Backend,
  BackendInfo,
  EngineOptions,
  EngineStats,
  NativeErrorCode,
  NativeEvent,
  NativeEngine,
  NativeModel,
  NativeModelConfig,
  NativeModule,
  NativeRequest,
  OpTensor,
} from './types';

export * from './types';

const CODES: ReadonlySet<string> = new Set<NativeErrorCode>([
  'E_INVALID_ARGUMENT',
  'E_MODEL_FORMAT',
  'E_OUT_OF_KV_CACHE',
  'E_BACKEND_UNAVAILABLE',
  'E_DISPOSED',
  'E_CUDA',
  'E_INTERNAL',
]);

export class NativeError extends Error {
  readonly code: NativeErrorCode;
  constructor(code: NativeErrorCode, message: string) {
    super(message);
    this.name = 'NativeError';
    this.code = code;
  }
}

// Duck-typed on purpose: errors created by the addon come from Node's main realm, so `instanceof Error`
// is false for them inside a vm context such as jest's.
function hasNativeCode(e: unknown): e is { code: NativeErrorCode; message: string; stack?: string } {
  if (typeof e !== 'object' || e === null) return false;
  const o = e as { code?: unknown; message?: unknown };
  return typeof o.code === 'string' && CODES.has(o.code) && typeof o.message === 'string';
}

export function isNativeError(e: unknown): e is NativeError {
  return e instanceof NativeError || hasNativeCode(e);
}

function toNativeError(e: unknown): unknown {
  if (e instanceof NativeError || !hasNativeCode(e)) return e;
  const ne = new NativeError(e.code, e.message);
  if (e.stack) ne.stack = `NativeError: ${e.message}\n${e.stack.split('\n').slice(1).join('\n')}`;
  return ne;
}

function guard<T>(fn: () => T): T {
  try {
    const r = fn();
    if (r instanceof Promise) return r.catch((e) => Promise.reject(toNativeError(e))) as unknown as T;
    return r;
  } catch (e) {
    throw toNativeError(e);
  }
}

export interface LoadNativeOptions {
  backend?: 'auto' | Backend;
  log?: (msg: string) => void;
}

/** libs/native folder holding build/<variant>; walks up from this file. */
export function nativeDir(): string {
  if (process.env.LMFLEET_NATIVE_DIR) return path.resolve(process.env.LMFLEET_NATIVE_DIR);
  let dir = __dirname;
  for (;;) {
    const candidate = path.join(dir, 'libs', 'native');
    if (fs.existsSync(path.join(candidate, 'CMakeLists.txt')) || fs.existsSync(path.join(candidate, 'build'))) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return path.resolve(__dirname, '..');
}

export function binaryPath(variant: Backend): string | null {
  const dir = path.join(nativeDir(), 'build', variant, 'Release');
  try {
    const f = fs.readdirSync(dir).find((n) => n.endsWith('.node'));
    return f ? path.join(dir, f) : null;
  } catch {
    return null;
  }
}

function visibleGpu(): string | null {
  const cvd = process.env.CUDA_VISIBLE_DEVICES;
  if (cvd !== undefined && (cvd.trim() === '' || cvd.trim() === '-1')) return 'CUDA_VISIBLE_DEVICES hides every GPU';
  if (!fs.existsSync('/dev/nvidiactl') && !fs.existsSync('/dev/nvidia0')) return 'no NVIDIA GPU visible (/dev/nvidia0 missing)';
  return null;
}

// The raw addon surface (what addon.cc exports).
interface RawModel {
  load(): Promise<void>;
  forward(ids: Int32Array): Promise<Float32Array>;
  scoreTokens(ids: Int32Array): Promise<Float32Array>;
  weightBytes(): number;
  dispose(): void;
}
interface RawEngine {
  start(onEvent: (events: NativeEvent[]) => void): void;
  submit(req: NativeRequest | NativeRequest[]): void;
  cancel(id: number): void;
  endSession(sessionId: number): void;
  setAllowedTokens(id: number, mask: Uint32Array | Int32Array): void;
  stats(): EngineStats;
  dispose(): Promise<void>;
}
interface RawAddon {
  version: string;
  backend: Backend;
  backendInfo(): BackendInfo;
  listOps(): string[];
  runOp(name: string, inputs: OpTensor[], params: Record<string, number | string>): Promise<OpTensor[]>;
  createModel(config: NativeModelConfig): RawModel;
  createEngine(model: RawModel, opts: EngineOptions): RawEngine;
  createAwqSession(config: AwqSessionConfig): NativeAwqSession;
}

const rawModels = new WeakMap<NativeModel, RawModel>();

function wrap(raw: RawAddon): NativeModule {
  return {
    backend: raw.backend,
    version: raw.version,
    backendInfo: () => raw.backendInfo(),
    listOps: () => raw.listOps(),
    runOp: (name, inputs, params) => guard(() => Promise.resolve().then(() => raw.runOp(name, inputs, params ?? {}))),
    createModel: (config) => {
      const m = guard(() => raw.createModel(config));
      const model: NativeModel = {
        backend: config.backend,
        load: () => guard(() => m.load()),
        forward: (ids) => guard(() => Promise.resolve().then(() => m.forward(ids))),
        scoreTokens: (ids) => guard(() => Promise.resolve().then(() => m.scoreTokens(ids))),
        weightBytes: () => guard(() => m.weightBytes()),
        dispose: () => m.dispose(),
      };
      rawModels.set(model, m);
      return model;
    },
    createAwqSession: (config) => {
      const sess = guard(() => raw.createAwqSession(config));
      return {
        setTensors: (t, o) => guard(() => Promise.resolve().then(() => sess.setTensors(t, o))),
        setInput: (x, lens, o) => guard(() => Promise.resolve().then(() => sess.setInput(x, lens, o ?? {}))),
        run: (o) => guard(() => Promise.resolve().then(() => sess.run(o ?? {}))),
        scaleLosses: (g, c, o) => guard(() => Promise.resolve().then(() => sess.scaleLosses(g, c, o))),
        clipSearch: (l, r, o) => guard(() => Promise.resolve().then(() => sess.clipSearch(l, r, o))),
        quantize: (l, c, o) => guard(() => Promise.resolve().then(() => sess.quantize(l, c, o))),
        input: () => guard(() => Promise.resolve().then(() => sess.input())),
        dispose: () => sess.dispose(),
      };
    },
    createEngine: (model, opts) => {
      const m = rawModels.get(model);
      if (!m) throw new NativeError('E_INVALID_ARGUMENT', 'createEngine: model was not created by this module');
      const e = guard(() => raw.createEngine(m, opts));
      const engine: NativeEngine = {
        start: (onEvent) =>
          guard(() =>
            e.start((events) => {
              // Every event is delivered even if a listener throws; the first error is rethrown after.
              let failed = false;
              let first: unknown;
              for (const ev of events) {
                try {
                  onEvent(ev);
                } catch (err) {
                  if (!failed) first = err;
                  failed = true;
                }
              }
              if (failed) throw first;
            }),
          ),
        submit: (req) => guard(() => e.submit(req)),
        cancel: (id) => guard(() => e.cancel(id)),
        endSession: (sid) => guard(() => e.endSession(sid)),
        setAllowedTokens: (id, mask) => guard(() => e.setAllowedTokens(id, mask)),
        stats: () => guard(() => e.stats()),
        dispose: () => guard(() => e.dispose()),
      };
      return engine;
    },
  };
}

const loaded = new Map<Backend, NativeModule>();

function loadVariant(variant: Backend): NativeModule {
  const cached = loaded.get(variant);
  if (cached) return cached;
  const file = binaryPath(variant);
  if (!file) throw new NativeError('E_BACKEND_UNAVAILABLE', `${variant}: no binary in ${path.join(nativeDir(), 'build', variant, 'Release')} (run npm run build:native)`);
  let raw: RawAddon;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    raw = require(file) as RawAddon;
  } catch (e) {
    throw new NativeError('E_BACKEND_UNAVAILABLE', `${variant}: ${file} failed to load: ${(e as Error).message}`);
  }
  const info = raw.backendInfo();
  if (!info.available) throw new NativeError('E_BACKEND_UNAVAILABLE', `${variant}: ${info.reason ?? 'backend reports unavailable'}`);
  const mod = wrap(raw);
  loaded.set(variant, mod);
  return mod;
}

export function loadNative(opts: LoadNativeOptions = {}): NativeModule {
  const want = opts.backend ?? 'auto';
  const log = opts.log ?? (() => undefined);
  if (want === 'cpu') return loadVariant('cpu');
  if (want === 'cuda' || want === 'auto') {
    const noGpu = visibleGpu();
    let reason: string;
    if (noGpu) {
      reason = noGpu;
    } else {
      try {
        const m = loadVariant('cuda');
        log(`lmfleet-native: using cuda (${m.version})`);
        return m;
      } catch (e) {
        reason = (e as Error).message;
      }
    }
    if (want === 'cuda') throw new NativeError('E_BACKEND_UNAVAILABLE', `cuda backend unavailable: ${reason}`);
    log(`lmfleet-native: cuda unavailable (${reason}); falling back to cpu`);
    return loadVariant('cpu');
  }
  throw new NativeError('E_INVALID_ARGUMENT', `loadNative: unknown backend '${String(want)}'`);
}
