// A scripted stand-in for @lmfleet/native, for testing the engine's TypeScript logic (demultiplexing, streaming,
// stop words, cancellation, sessions, ppl arithmetic) without the addon. It follows the NativeModule contract:
// events arrive asynchronously, one token per tick, 'done' ends every request exactly once.
import type {
  Backend, BackendInfo, NativeEngineOptions as EngineOptions, EngineStats, NativeEngine, NativeErrorCode, NativeEvent, NativeModel, NativeModelConfig, NativeModule, NativeRequest,
} from '../native';

export interface FakeNativeOptions {
  backend?: Backend;
  /** Tokens to generate for a request (default: echo the request's input ids, cycling). */
  script?: (req: NativeRequest, sessionHistory: number[]) => number[];
  /** NLL per position for scoreTokens (default: (next id % 5) / 2). */
  nll?: (ids: Int32Array, t: number) => number;
  /** Make loading `cuda` fail with this reason (for fallback tests). */
  unavailable?: Partial<Record<Backend, string>>;
  /** Refuse at submit (throw E_INVALID_ARGUMENT, as native validation does) requests whose first input id is this. */
  refuseFirstId?: number;
  /** Fail requests whose first input id is this, with an error event of this code. */
  failOn?: { firstId: number; code: NativeErrorCode; message: string };
}

export interface FakeNativeLog {
  configs: NativeModelConfig[];
  engineOptions: EngineOptions[];
  submitted: NativeRequest[];
  /** Requests per submit() call, in order (arrays count their length), refused calls included. */
  submitCalls: number[];
  cancelled: number[];
  endedSessions: number[];
  disposedEngines: number;
  disposedModels: number;
}

class FakeModel implements NativeModel {
  disposed = false;
  constructor(readonly backend: Backend, private readonly opts: FakeNativeOptions, private readonly log: FakeNativeLog, readonly config: NativeModelConfig) {}
  async load(): Promise<void> {}
  async forward(inputIds: Int32Array): Promise<Float32Array> {
    return new Float32Array(inputIds.length * this.config.vocabSize);
  }
  async scoreTokens(ids: Int32Array): Promise<Float32Array> {
    const f = this.opts.nll ?? ((x: Int32Array, t: number) => (x[t + 1] % 5) / 2);
    const out = new Float32Array(ids.length - 1);
    for (let t = 0; t < ids.length - 1; t++) out[t] = f(ids, t);
    return out;
  }
  weightBytes(): number {
    return 0;
  }
  dispose(): void {
    if (!this.disposed) this.log.disposedModels++;
    this.disposed = true;
  }
}

class FakeEngine implements NativeEngine {
  private onEvent?: (ev: NativeEvent) => void;
  private readonly running = new Map<number, { cancel: boolean }>();
  private readonly sessions = new Map<number, number[]>();
  private disposed = false;
  private steps = 0;

  constructor(private readonly opts: FakeNativeOptions, private readonly log: FakeNativeLog, private readonly engineOpts: EngineOptions) {}

  start(onEvent: (ev: NativeEvent) => void): void {
    this.onEvent = onEvent;
  }

  submit(reqOrMany: NativeRequest | NativeRequest[]): void {
    const many = Array.isArray(reqOrMany) ? reqOrMany : [reqOrMany];
    this.log.submitCalls.push(many.length);
    if (this.disposed) throw Object.assign(new Error('engine disposed'), { code: 'E_DISPOSED' });
    // validated as a whole, as native code does: one refused request queues none
    const ids = new Set<number>();
    for (const r of many) {
      if (this.running.has(r.id) || ids.has(r.id)) throw Object.assign(new Error(`duplicate request id ${r.id}`), { code: 'E_INVALID_ARGUMENT' });
      if (this.opts.refuseFirstId !== undefined && r.inputIds[0] === this.opts.refuseFirstId)
        throw Object.assign(new Error(`request ${r.id}: refused`), { code: 'E_INVALID_ARGUMENT' });
      ids.add(r.id);
    }
    for (const r of many) this.start1(r);
  }

  private start1(req: NativeRequest): void {  // submit() has validated it
    this.log.submitted.push({ ...req, inputIds: Int32Array.from(req.inputIds) });
    const state = { cancel: false };
    this.running.set(req.id, state);
    const history = req.sessionId ? (this.sessions.get(req.sessionId) ?? []) : [];
    const input = Array.from(req.inputIds);
    const script = this.opts.script ? this.opts.script(req, history) : input;
    const emit = (ev: NativeEvent) => setImmediate(() => this.onEvent?.(ev));
    if (this.opts.failOn && input[0] === this.opts.failOn.firstId) {
      this.running.delete(req.id);
      emit({ type: 'error', id: req.id, code: this.opts.failOn.code, message: this.opts.failOn.message });
      return;
    }
    const generated: number[] = [];
    const t0 = Date.now();
    const finish = (finishReason: 'stop' | 'length' | 'cancelled') => {
      this.running.delete(req.id);
      if (req.sessionId && finishReason !== 'cancelled') this.sessions.set(req.sessionId, [...history, ...input, ...generated]);
      if (req.sessionId && finishReason === 'cancelled') this.sessions.delete(req.sessionId);
      this.onEvent?.({
        type: 'done', id: req.id, finishReason, promptTokens: input.length, completionTokens: generated.length, cachedTokens: 0,
        queuedMs: 0, firstTokenMs: 1, totalMs: Date.now() - t0,
      });
    };
    const step = () => {
      if (this.disposed) return;
      this.steps++;
      if (state.cancel) return finish('cancelled');
      if (generated.length >= req.maxNewTokens || script.length === 0) return finish('length');
      const tok = script[generated.length % script.length];
      generated.push(tok);
      // Like the native scheduler: a stop token ends the request, counts as generated, but is not sent.
      if (req.stopIds?.includes(tok)) return setImmediate(() => finish('stop'));
      const ev: NativeEvent = { type: 'tokens', id: req.id, tokens: [tok] };
      if (req.logprobs) ev.logprobs = [{ logprob: -0.5, top: [[tok, -0.5]] }];
      this.onEvent?.(ev);
      setImmediate(step);
    };
    setImmediate(step);
  }

  cancel(id: number): void {
    this.log.cancelled.push(id);
    const s = this.running.get(id);
    if (s) s.cancel = true;
  }

  /** Guided requests run unguided here: the masks' effect is the native engine's (libs/native engine.spec.ts). */
  setAllowedTokens(): void {}

  endSession(sessionId: number): void {
    this.log.endedSessions.push(sessionId);
    this.sessions.delete(sessionId);
  }

  sessionTokens(sessionId: number): number[] | undefined {
    return this.sessions.get(sessionId);
  }

  stats(): EngineStats {
    return {
      running: this.running.size, waiting: 0, blocksTotal: this.engineOpts.numBlocks ?? 0, blocksFree: this.engineOpts.numBlocks ?? 0, blocksCached: 0,
      blockSize: this.engineOpts.blockSize, sessions: this.sessions.size, steps: this.steps, specDraftTokens: 0, specAcceptedTokens: 0,
    };
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.log.disposedEngines++;
    for (const [id] of this.running) {
      this.onEvent?.({ type: 'done', id, finishReason: 'cancelled', promptTokens: 0, completionTokens: 0, cachedTokens: 0, queuedMs: 0, firstTokenMs: 0, totalMs: 0 });
    }
    this.running.clear();
  }
}

export function createFakeNative(opts: FakeNativeOptions = {}): { loader: (b: Backend) => NativeModule; native: NativeModule; log: FakeNativeLog } {
  const log: FakeNativeLog = { configs: [], engineOptions: [], submitted: [], submitCalls: [], cancelled: [], endedSessions: [], disposedEngines: 0, disposedModels: 0 };
  const make = (backend: Backend): NativeModule => ({
    backend,
    version: `fake-native 0.0.0 ${backend}`,
    backendInfo: (): BackendInfo => ({ backend, available: !opts.unavailable?.[backend], reason: opts.unavailable?.[backend] }),
    createModel: (config) => {
      log.configs.push(config);
      return new FakeModel(backend, opts, log, config);
    },
    createEngine: (_model, engineOpts) => {
      log.engineOptions.push(engineOpts);
      return new FakeEngine(opts, log, engineOpts);
    },
    listOps: () => [],
    runOp: async () => [],
  });
  const loader = (backend: Backend): NativeModule => {
    const reason = opts.unavailable?.[backend];
    if (reason) throw Object.assign(new Error(reason), { code: 'E_BACKEND_UNAVAILABLE' });
    return make(backend);
  };
  return { loader, native: make(opts.backend ?? 'cpu'), log };
}
