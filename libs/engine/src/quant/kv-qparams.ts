// KV-cache quantization parameters (LMDeploy's quant_policy and kv_qparams). The engine quantizes K and V as they are
// stored in the paged cache and dequantizes them inside attention (libs/native ops/kv_quant.h): asymmetric, a
// (scale, zero) pair per token and KV head. Two modes:
// - online (default): scale and zero come from each stored row's own min/max (LMDeploy's TurboMind does this);
// - calibrated: one fixed pair per layer and KV head from `lite calibrate`'s K/V statistics (the min/max of the
//   roped K and of V per head over the calibration samples), zero = min, scale = (max - min) / (2^bits - 1); values
//   outside the calibrated range clamp. This is LMDeploy's kv_qparams idea (static per-head parameters from
//   calibration), in the same asymmetric format the online mode writes.
import { InvalidArgumentError, QuantConfigError } from '../errors';
import { loadCalibration } from './calibrate';

export type KvQuantPolicy = 0 | 4 | 8;

/** Validates a --quant-policy value (0, 4 or 8). */
export function parseQuantPolicy(v: unknown, what = 'quantPolicy'): KvQuantPolicy {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (n === 0 || n === 4 || n === 8) return n;
  throw new InvalidArgumentError(`${what} must be 0 (fp16 KV cache), 8 (int8) or 4 (int4), got ${JSON.stringify(v)}`);
}

export interface KvQparams {
  /** [numLayers, 2 (K, V), numKvHeads, 2 (scale, zero)]. */
  values: Float32Array;
  /** Where they came from (the calibration work dir). */
  source: string;
}

/** Per-layer, per-KV-head (scale, zero) for `policy` from a calibration work dir. */
export function kvQparamsFromCalibration(
  workDir: string, policy: 4 | 8, model: { numLayers: number; hiddenSize: number; intermediateSize: number; numKvHeads: number },
): KvQparams {
  const calib = loadCalibration(workDir, model);
  if (calib.manifest.numKvHeads !== model.numKvHeads) {
    throw new QuantConfigError(`calibration in ${workDir} has ${calib.manifest.numKvHeads} KV heads, the model ${model.numKvHeads}`);
  }
  const qmax = policy === 8 ? 255 : 15;
  const H = model.numKvHeads;
  const values = new Float32Array(model.numLayers * 2 * H * 2);
  for (let l = 0; l < model.numLayers; l++) {
    ['k_cache', 'v_cache'].forEach((name, kv) => {
      const s = calib.kv.get(`layers.${l}.${name}`)!;
      for (let h = 0; h < H; h++) {
        const mn = s.min[h];
        const mx = s.max[h];
        if (!Number.isFinite(mn) || !Number.isFinite(mx) || mx < mn) {
          throw new QuantConfigError(`calibration in ${workDir}: layers.${l}.${name} head ${h} has no usable range [${mn}, ${mx}]`);
        }
        const o = ((l * 2 + kv) * H + h) * 2;
        values[o] = (mx - mn) / qmax;
        values[o + 1] = mn;
      }
    });
  }
  return { values, source: workDir };
}
