import {
  BackendUnavailableError, DisposedError, EngineError, InvalidArgumentError, ModelFormatError, NativeError, OutOfKvCacheError,
  fromNativeError, toEngineError,
} from './errors';

describe('errors', () => {
  it('maps every native error code to an engine error class with a stable code', () => {
    expect(fromNativeError('E_INVALID_ARGUMENT', 'x')).toBeInstanceOf(InvalidArgumentError);
    expect(fromNativeError('E_MODEL_FORMAT', 'x')).toBeInstanceOf(ModelFormatError);
    expect(fromNativeError('E_OUT_OF_KV_CACHE', 'x')).toBeInstanceOf(OutOfKvCacheError);
    expect(fromNativeError('E_BACKEND_UNAVAILABLE', 'x')).toBeInstanceOf(BackendUnavailableError);
    expect(fromNativeError('E_DISPOSED', 'x')).toBeInstanceOf(DisposedError);
    const cuda = fromNativeError('E_CUDA', 'illegal address at gemm.cu:10');
    expect(cuda).toBeInstanceOf(NativeError);
    expect(cuda.code).toBe('E_NATIVE');
    expect((cuda as NativeError).nativeCode).toBe('E_CUDA');
    expect(fromNativeError('E_OUT_OF_KV_CACHE', 'x').code).toBe('E_OUT_OF_KV_CACHE');
  });

  it('wraps thrown native errors by their code and passes engine errors through', () => {
    const e = toEngineError(Object.assign(new Error('no free blocks'), { code: 'E_OUT_OF_KV_CACHE' }));
    expect(e).toBeInstanceOf(OutOfKvCacheError);
    expect(e.message).toBe('no free blocks');
    const own = new InvalidArgumentError('bad');
    expect(toEngineError(own)).toBe(own);
    expect(toEngineError('weird')).toBeInstanceOf(EngineError);
  });

  it('ModelFormatError states file, tensor, expected and found', () => {
    const e = new ModelFormatError('tensor has the wrong shape', { file: '/m/a.safetensors', tensor: 'w', expected: '[2, 3]', found: '[3, 2]' });
    expect(e.message).toBe('tensor has the wrong shape; file: /m/a.safetensors; tensor: w; expected: [2, 3]; found: [3, 2]');
    expect(e.name).toBe('ModelFormatError');
    expect(e).toMatchObject({ code: 'E_MODEL_FORMAT', file: '/m/a.safetensors', tensor: 'w', expected: '[2, 3]', found: '[3, 2]' });
  });
});
