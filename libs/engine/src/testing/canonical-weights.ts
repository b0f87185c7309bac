// A model directory's tensors in canonical names as f32 (specs that compare weights across checkpoints).
import { decodeHalf } from '../io/half';
import { dequantizeAwqSources } from '../models/awq-dequant';
import { loadModelSpec, loadModelWeights } from '../models/load';
import { readSourceBytes } from '../models/source-bytes';

/** Canonical fp tensors of a model directory (AWQ directories dequantized as the cpu loader does). */
export function canonicalWeights(dir: string): Map<string, Float32Array> {
  const loaded = loadModelSpec(dir);
  let { tensors } = loadModelWeights(loaded);
  if (loaded.spec.quant) tensors = dequantizeAwqSources(tensors, loaded.spec.quant.groupSize, loaded.spec.dtype);
  return new Map(tensors.map((t) => [t.name, decodeHalf(readSourceBytes(t), 'f16')]));
}
