// Engine errors: one base class with a stable `code`, subclasses named for what went wrong. Messages say what was
// expected and what was found, so a user (or the platform's exception filter) can act on them without a debugger.
import type { NativeErrorCode } from './native';

export type EngineErrorCode =
  | 'E_ENGINE'
  | 'E_INVALID_ARGUMENT'
  | 'E_UNSUPPORTED_ARCHITECTURE'
  | 'E_MODEL_FORMAT'
  | 'E_QUANT_CONFIG'
  | 'E_OUT_OF_KV_CACHE'
  | 'E_BACKEND_UNAVAILABLE'
  | 'E_DISPOSED'
  | 'E_NOT_SUPPORTED'
  | 'E_NATIVE';

export class EngineError extends Error {
  readonly code: EngineErrorCode;
  constructor(message: string, code: EngineErrorCode = 'E_ENGINE', options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

export class InvalidArgumentError extends EngineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'E_INVALID_ARGUMENT', options);
  }
}

export class UnsupportedArchitectureError extends EngineError {
  readonly architecture: string;
  readonly supported: readonly string[];
  constructor(architecture: string, supported: readonly string[], where?: string) {
    super(
      `unsupported architecture ${JSON.stringify(architecture)}${where ? ` (${where})` : ''}; ` +
        `supported: ${supported.join(', ')}`,
      'E_UNSUPPORTED_ARCHITECTURE',
    );
    this.architecture = architecture;
    this.supported = supported;
  }
}

export interface ModelFormatDetails {
  file?: string;
  tensor?: string;
  expected?: string;
  found?: string;
}

export class ModelFormatError extends EngineError {
  readonly file?: string;
  readonly tensor?: string;
  readonly expected?: string;
  readonly found?: string;
  constructor(message: string, details: ModelFormatDetails = {}, options?: { cause?: unknown }) {
    const parts = [message];
    if (details.file) parts.push(`file: ${details.file}`);
    if (details.tensor) parts.push(`tensor: ${details.tensor}`);
    if (details.expected !== undefined) parts.push(`expected: ${details.expected}`);
    if (details.found !== undefined) parts.push(`found: ${details.found}`);
    super(parts.join('; '), 'E_MODEL_FORMAT', options);
    Object.assign(this, details);
  }
}

export class QuantConfigError extends EngineError {
  constructor(message: string) {
    super(message, 'E_QUANT_CONFIG');
  }
}

export class OutOfKvCacheError extends EngineError {
  constructor(message: string) {
    super(message, 'E_OUT_OF_KV_CACHE');
  }
}

export class BackendUnavailableError extends EngineError {
  readonly backend: string;
  readonly reason: string;
  constructor(backend: string, reason: string, options?: { cause?: unknown }) {
    super(`backend ${JSON.stringify(backend)} is unavailable: ${reason}`, 'E_BACKEND_UNAVAILABLE', options);
    this.backend = backend;
    this.reason = reason;
  }
}

export class DisposedError extends EngineError {
  constructor(what: string) {
    super(`${what} has been disposed`, 'E_DISPOSED');
  }
}

export class NotSupportedError extends EngineError {
  constructor(message: string) {
    super(message, 'E_NOT_SUPPORTED');
  }
}

/** Native code failed in a way that is not the caller's fault (CUDA error, internal invariant). */
export class NativeError extends EngineError {
  readonly nativeCode: string;
  constructor(nativeCode: string, message: string, options?: { cause?: unknown }) {
    super(`${nativeCode}: ${message}`, 'E_NATIVE', options);
    this.nativeCode = nativeCode;
  }
}

/** Maps a native error code (thrown by the addon or carried by an 'error' event) to the engine's error class. */
export function fromNativeError(code: NativeErrorCode | string | undefined, message: string, cause?: unknown): EngineError {
  switch (code) {
    case 'E_INVALID_ARGUMENT':
      return new InvalidArgumentError(message, { cause });
    case 'E_MODEL_FORMAT':
      return new ModelFormatError(message, {}, { cause });
    case 'E_OUT_OF_KV_CACHE':
      return new OutOfKvCacheError(message);
    case 'E_BACKEND_UNAVAILABLE':
      return new BackendUnavailableError('native', message, { cause });
    case 'E_DISPOSED':
      return new DisposedError(message);
    case 'E_CUDA':
    case 'E_INTERNAL':
    default:
      return new NativeError(code ?? 'E_UNKNOWN', message, { cause });
  }
}

/** Wraps anything thrown by the addon: errors with a `code` become engine errors, engine errors pass through. */
export function toEngineError(err: unknown): EngineError {
  if (err instanceof EngineError) return err;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return fromNativeError(typeof code === 'string' ? code : undefined, err.message, err);
  }
  return new NativeError('E_UNKNOWN', String(err));
}
