// Backend selection (node-llama-cpp's fallback idea): 'auto' tries CUDA, falls back to CPU and logs why;
// 'cuda' tries CUDA only and throws BackendUnavailableError with the reason.
import { BackendUnavailableError } from '../errors';
import { loadNative, type Backend, type NativeModule } from '../native';
import type { BackendChoice, Logger } from './types';

export type NativeLoader = (backend: Backend) => NativeModule | Promise<NativeModule>;

/** Loads one variant of the addon (libs/native/build/<backend>). */
export const defaultNativeLoader: NativeLoader = (backend) => loadNative({ backend });

async function tryLoad(loader: NativeLoader, backend: Backend): Promise<NativeModule> {
  let mod: NativeModule;
  try {
    mod = await loader(backend);
  } catch (e) {
    if (e instanceof BackendUnavailableError) throw e;
    throw new BackendUnavailableError(backend, (e as Error)?.message ?? String(e), { cause: e });
  }
  const info = mod.backendInfo?.();
  if (info && !info.available) throw new BackendUnavailableError(backend, info.reason ?? 'not available');
  return mod;
}

export async function selectBackend(choice: BackendChoice, log: Logger, loader: NativeLoader = defaultNativeLoader): Promise<NativeModule> {
  if (choice === 'cpu' || choice === 'cuda') return tryLoad(loader, choice);
  try {
    const mod = await tryLoad(loader, 'cuda');
    log('info', `backend auto: using cuda${mod.backendInfo().deviceName ? ` (${mod.backendInfo().deviceName})` : ''}`);
    return mod;
  } catch (e) {
    log('info', `backend auto: falling back to cpu: ${(e as BackendUnavailableError).reason ?? (e as Error).message}`);
    return tryLoad(loader, 'cpu');
  }
}
