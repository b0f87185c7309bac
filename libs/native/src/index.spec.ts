import { binaryPath, isNativeError, loadNative, NativeError, nativeDir } from './index';

describe('loadNative', () => {
  it('finds the cpu build from the source folder', () => {
    expect(nativeDir()).toMatch(/libs[/\\]native$/);
    expect(binaryPath('cpu')).toMatch(/build[/\\]cpu[/\\]Release[/\\].*\.node$/);
    const m = loadNative({ backend: 'cpu' });
    expect(m.backend).toBe('cpu');
    expect(m.version).toMatch(/^lmfleet-native \d+\.\d+\.\d+ cpu$/);
    expect(m.backendInfo()).toMatchObject({ backend: 'cpu', available: true });
    expect(m.listOps()).toEqual(expect.arrayContaining(['linear', 'attention', 'rms_norm', 'rope', 'sample']));
  });

  it("'auto' falls back to cpu and logs why when cuda can't be used", () => {
    const logs: string[] = [];
    const m = loadNative({ backend: 'auto', log: (s) => logs.push(s) });
    if (m.backend === 'cpu') expect(logs.join('\n')).toMatch(/falling back to cpu/);
  });

  it("'cuda' that cannot load throws E_BACKEND_UNAVAILABLE with the reason", () => {
    const prev = process.env.CUDA_VISIBLE_DEVICES;
    process.env.CUDA_VISIBLE_DEVICES = '';
    try {
      expect(() => loadNative({ backend: 'cuda' })).toThrow(expect.objectContaining({ code: 'E_BACKEND_UNAVAILABLE', message: expect.stringContaining('CUDA_VISIBLE_DEVICES') }));
    } finally {
      if (prev === undefined) delete process.env.CUDA_VISIBLE_DEVICES;
      else process.env.CUDA_VISIBLE_DEVICES = prev;
    }
  });

  it('native errors are NativeError instances with a code', async () => {
    const m = loadNative({ backend: 'cpu' });
    const err = await m.runOp('no_such_op', [], {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NativeError);
    expect(isNativeError(err)).toBe(true);
    expect(err).toMatchObject({ code: 'E_INVALID_ARGUMENT' });
    expect(isNativeError(new Error('x'))).toBe(false);
  });
});
