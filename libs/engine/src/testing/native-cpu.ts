import { loadNative, type NativeModule } from '../native';
import { PretrainedModel } from '../generation/pretrained';
import { BlockForward } from '../quant/block-forward';
import { maxAbsDiff } from './nmse';

/**
 * The real CPU backend, or undefined (with the reason printed as "not run: ...") when the addon is not built here.
 * Specs that need native code use it so that a machine without the build reports instead of failing obscurely.
 */
export function nativeCpuOrReport(what: string): NativeModule | undefined {
  try {
    return loadNative({ backend: 'cpu' });
  } catch (e) {
    console.log(`${what}: not run: native cpu backend unavailable: ${(e as Error).message}`);
    return undefined;
  }
}

/** The CPU backend's logits for `ids` on the model directory `dir` (loaded for this and disposed). */
export async function cpuLogits(native: NativeModule, dir: string, ids: ArrayLike<number>): Promise<Float32Array> {
  const m = await PretrainedModel.load(dir, { native, backend: 'cpu' });
  try {
    return await m.forward(ids);
  } finally {
    m.dispose();
  }
}

/** The largest |CPU backend logit - BlockForward's (TypeScript) logit| for `ids` on the model directory `dir`. */
export async function cpuVsBlockForward(native: NativeModule, dir: string, ids: Int32Array): Promise<number> {
  const { fwd } = BlockForward.fromDir(native, dir);
  return maxAbsDiff(await cpuLogits(native, dir, ids), await fwd.forward(ids));
}
