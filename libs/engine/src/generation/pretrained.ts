// A model directory loaded onto a backend: spec, tokenizer, chat template and the native model (no KV cache / batch
// thread: that is the Engine's). evalPpl uses it directly; Engine.fromPretrained builds on it.
import { ChatTemplate, loadChatTemplate } from '../chat-template/chat-template';
import { DisposedError, InvalidArgumentError, toEngineError } from '../errors';
import { dequantizeAwqSources } from '../models/awq-dequant';
import { loadModelSpec, loadModelWeights, type LoadedModelSpec } from '../models/load';
import { toNativeArchConfig, type ModelSpec } from '../models/spec';
import type { Backend, NativeModel, NativeModule } from '../native';
import { Tokenizer } from '../tokenizer/tokenizer';
import { kvQparamsFromCalibration, parseQuantPolicy, type KvQuantPolicy } from '../quant/kv-qparams';
import type { WorkspaceManifest } from '../workspace/convert';
import { isWorkspace, loadWorkspace } from '../workspace/load';
import { selectBackend } from './backend';
import type { LoadOptions, Logger } from './types';

export const noopLogger: Logger = () => {};

/** The KV cache a model was loaded with: LMDeploy's quant_policy and where its scales come from. */
export interface KvQuantInfo {
  quantPolicy: KvQuantPolicy;
  /** 'float' (policy 0), 'online' (per-token min/max) or 'calibrated (<source>)'. */
  mode: string;
  qparams?: Float32Array;
}

/** opts.quantPolicy / kvCalibDir, else the workspace's recorded KV policy and parameters, else a float cache. */
export function resolveKvQuant(opts: LoadOptions, ws: WorkspaceManifest['kvCache'] | undefined, spec: ModelSpec): KvQuantInfo {
  const quantPolicy = parseQuantPolicy(opts.quantPolicy ?? ws?.quantPolicy ?? 0);
  if (quantPolicy === 0) {
    if (opts.kvCalibDir) throw new InvalidArgumentError('kvCalibDir needs quantPolicy 4 or 8');
    return { quantPolicy, mode: 'float' };
  }
  if (opts.kvCalibDir) {
    const q = kvQparamsFromCalibration(opts.kvCalibDir, quantPolicy, spec);
    return { quantPolicy, mode: `calibrated (${q.source})`, qparams: q.values };
  }
  // the workspace's parameters were made for its recorded policy (the scale depends on the bit width)
  if (ws?.qparams && ws.quantPolicy === quantPolicy) {
    return { quantPolicy, mode: `calibrated (${ws.qparams.source}, from the workspace)`, qparams: Float32Array.from(ws.qparams.values) };
  }
  return { quantPolicy, mode: 'online' };
}

export class PretrainedModel {
  private disposed = false;
  /** The KV cache quantization this model runs with (set by load). */
  kvQuant: KvQuantInfo = { quantPolicy: 0, mode: 'float' };
  /** Tensor parallelism: the device of each rank ('cuda:<ordinal>'; cpu ranks are threads: 'cpu'); set by load. */
  devices: string[] = [];

  constructor(
    readonly dir: string,
    readonly loaded: LoadedModelSpec,
    readonly tokenizer: Tokenizer,
    readonly chatTemplate: ChatTemplate,
    readonly native: NativeModule,
    private readonly nativeModel: NativeModel,
    readonly log: Logger,
  ) {}

  get spec(): ModelSpec {
    return this.loaded.spec;
  }

  get backend(): Backend {
    return this.native.backend;
  }

  /** The native model (throws once disposed). */
  get model(): NativeModel {
    if (this.disposed) throw new DisposedError('model');
    return this.nativeModel;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** -log p(ids[t+1] | ids[..t]) for t = 0..n-2. */
  async scoreTokens(ids: ArrayLike<number>): Promise<Float32Array> {
    try {
      return await this.model.scoreTokens(Int32Array.from(ids));
    } catch (e) {
      throw toEngineError(e);
    }
  }

  /** Logits [n, vocab] (row-major f32) of a full forward without cache. */
  async forward(ids: ArrayLike<number>): Promise<Float32Array> {
    try {
      return await this.model.forward(Int32Array.from(ids));
    } catch (e) {
      throw toEngineError(e);
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.nativeModel.dispose();
  }

  static async load(dir: string, opts: LoadOptions = {}): Promise<PretrainedModel> {
    const log = opts.log ?? noopLogger;
    const ws = isWorkspace(dir) ? loadWorkspace(dir) : undefined; // an engine workspace (lmfleet.json) or an HF directory
    const loaded = ws?.loaded ?? loadModelSpec(dir);
    const tokenizer = Tokenizer.fromDir(loaded.dir);
    const specials = { bosToken: tokenizer.special.bosToken, eosToken: tokenizer.special.eosToken };
    const chatTemplate = opts.chatTemplate !== undefined
      ? new ChatTemplate(opts.chatTemplate, 'builtin', specials, 'chatTemplate option')
      : loadChatTemplate(loaded.dir, loaded.arch.defaultChatTemplate(loaded.spec), specials);
    let { tensors } = ws ?? loadModelWeights(loaded);
    const native = opts.native ?? (await selectBackend(opts.backend ?? 'auto', log));
    const quant = loaded.spec.quant;
    if (quant && opts.awq === 'dequantize') {
      const t0 = Date.now();
      tensors = dequantizeAwqSources(tensors, quant.groupSize, loaded.spec.dtype);
      delete loaded.spec.quant;
      log('info', `AWQ w${quant.bits}g${quant.groupSize}: dequantized to ${loaded.spec.dtype} on load for ${native.backend} (${Date.now() - t0} ms)`);
    }
    if (native.backend === 'cuda' && loaded.spec.dtype === 'bf16') {
      log('warn', 'bf16 weights run in f16 on cuda (no bf16 kernels yet): a weight beyond f16\'s range (|x| >= 65520) ' +
        'fails the load with an error naming the tensor; activations beyond +-65504 would overflow to inf at run time');
    }
    const kv = resolveKvQuant(opts, ws?.kvCache, loaded.spec);
    if (kv.quantPolicy) log('info', `KV cache int${kv.quantPolicy} (quant_policy ${kv.quantPolicy}), ${kv.mode}`);
    const t0 = Date.now();
    let model: NativeModel;
    try {
      model = native.createModel({
        ...toNativeArchConfig(loaded.spec),
        ...(kv.quantPolicy ? { kvQuantPolicy: kv.quantPolicy } : {}),
        ...(kv.qparams ? { kvQparams: kv.qparams } : {}),
        backend: native.backend,
        ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
        ...(opts.device !== undefined ? { device: opts.device } : {}),
        ...(opts.tp !== undefined && opts.tp !== 1 ? { tp: opts.tp } : {}),
        ...(opts.devices !== undefined ? { devices: opts.devices } : {}),
        tensors,
      });
    } catch (e) {
      throw toEngineError(e);
    }
    try {
      await model.load();
    } catch (e) {
      model.dispose();
      throw toEngineError(e);
    }
    log(
      'info',
      `loaded ${loaded.spec.hfArchitecture} (${loaded.spec.dtype}, ${loaded.spec.numLayers} layers) from ${loaded.dir} on ` +
        `${native.backend}${(opts.tp ?? 1) > 1 ? ` with tp ${opts.tp}` : ''} in ${Date.now() - t0} ms`,
    );
    const pm = new PretrainedModel(loaded.dir, loaded, tokenizer, chatTemplate, native, model, log);
    pm.kvQuant = { quantPolicy: kv.quantPolicy, mode: kv.mode };
    const tp = opts.tp ?? 1;
    pm.devices = Array.from({ length: tp }, (_, r) =>
      native.backend === 'cuda' ? `cuda:${opts.devices?.[r] ?? (tp > 1 ? r : (opts.device ?? 0))}` : 'cpu',
    );
    return pm;
  }
}
