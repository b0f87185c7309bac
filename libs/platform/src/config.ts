// The one place that reads process.env. Every process (api, worker-quant, worker-infer, scripts) calls
// loadConfig() once at startup and passes the result around through Nest's DI (APP_CONFIG).
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface AppConfig {
  databaseUrl: string;
  redisUrl: string;
  /** BullMQ key prefix: every queue key lives under `<queuePrefix>:`. Tests use one per run. */
  queuePrefix: string;
  /** Shared directory for artifacts (absolute). */
  artifactDir: string;
  /** Directories under which models may be registered (absolute, symlinks resolved at check time). */
  modelRoots: string[];
  port: number;
  /** Address the API binds (API_HOST; default all interfaces). */
  host: string;
  /** API keys accepted as `Authorization: Bearer <key>` (API_KEYS and/or API_KEYS_FILE); empty: no auth. */
  apiKeys: string[];
  /** Largest request body the API parses (413 beyond). */
  bodyLimitBytes: number;
  /** Run pending migrations at startup (api and workers; serialized by an advisory lock). */
  runMigrations: boolean;
  jobs: {
    attempts: number;
    backoffMs: number;
  };
  serving: {
    /** worker-infer re-reads the deployments table this often. */
    deploymentPollMs: number;
    /** The API gives up on a request whose stream stays silent this long (no worker took it, or it hangs). */
    streamTimeoutMs: number;
  };
  worker: {
    /** Overrides the `<host>-<pid>` name a worker registers under. */
    name?: string;
    concurrency: number;
    lockDurationMs: number;
    stalledIntervalMs: number;
    maxStalledCount: number;
    heartbeatIntervalMs: number;
    /** A worker whose last heartbeat is older than this is marked `gone`. */
    heartbeatTimeoutMs: number;
    /** On SIGTERM: wait this long for in-flight jobs, then return them to the queue. */
    shutdownGraceMs: number;
    /** worker-infer: deployments (queues `infer-<id>`) this process serves. */
    inferDeployments: string[];
    /** Engine backend handed to Engine.fromPretrained / evalPpl. */
    engineBackend: 'auto' | 'cpu' | 'cuda';
    /** worker-infer, cpu backend: the engine's threads per deployment (0: one per core, the engine's default). */
    engineThreads: number;
    /** CUDA_VISIBLE_DEVICES: the GPU this worker owns (one worker per GPU), reported in `workers`. */
    cudaVisibleDevices?: string;
  };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

export function loadConfig(env: Env = process.env): AppConfig {
  const problems: string[] = [];
  const str = (key: string, fallback?: string): string => {
    const v = env[key]?.trim();
    if (v) return v;
    if (fallback === undefined) {
      problems.push(`${key} is required`);
      return '';
    }
    return fallback;
  };
  const int = (key: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number => {
    const raw = env[key]?.trim();
    if (!raw) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${key} must be an integer in [${min}, ${max}], got "${raw}"`);
      return fallback;
    }
    return n;
  };
  const url = (key: string, fallback: string, protocols: string[]): string => {
    const v = str(key, fallback);
    try {
      const u = new URL(v);
      if (!protocols.includes(u.protocol)) problems.push(`${key} must use ${protocols.join(' or ')}, got ${u.protocol}`);
    } catch {
      problems.push(`${key} is not a valid URL`);
    }
    return v;
  };
  const list = (key: string, fallback = ''): string[] =>
    str(key, fallback)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);

  const queuePrefix = str('REDIS_PREFIX', str('QUEUE_PREFIX', 'lmfleet'));
  if (queuePrefix.includes(':')) problems.push('REDIS_PREFIX must not contain ":" (BullMQ separator)');

  const modelRoots = list('MODEL_ROOTS').map((r) => {
    if (!path.isAbsolute(r)) problems.push(`MODEL_ROOTS entry "${r}" must be an absolute path`);
    return path.resolve(r);
  });
  const deployments = list('INFER_DEPLOYMENTS', 'default');
  for (const d of deployments) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(d)) problems.push(`INFER_DEPLOYMENTS entry "${d}" must match [A-Za-z0-9_-]{1,64}`);
  }
  const backend = str('ENGINE_BACKEND', 'auto');
  if (!['auto', 'cpu', 'cuda'].includes(backend)) problems.push(`ENGINE_BACKEND must be auto|cpu|cuda, got "${backend}"`);
  const runMigrations = str('RUN_MIGRATIONS', 'true');
  if (!['true', 'false'].includes(runMigrations)) problems.push('RUN_MIGRATIONS must be true or false');

  const apiKeys = list('API_KEYS');
  const keysFile = env.API_KEYS_FILE?.trim();
  if (keysFile) {
    try {
      // One key per line; blank lines and lines starting with # are ignored.
      for (const line of fs.readFileSync(keysFile, 'utf8').split('\n')) {
        const k = line.trim();
        if (k && !k.startsWith('#')) apiKeys.push(k);
      }
    } catch (e) {
      problems.push(`API_KEYS_FILE: cannot read ${keysFile}: ${(e as Error).message}`);
    }
  }
  if (apiKeys.some((k) => !/^[\x21-\x7e]{8,}$/.test(k))) problems.push('API keys must be at least 8 printable characters without spaces');

  const heartbeatIntervalMs = int('HEARTBEAT_INTERVAL_MS', 5000, 100);
  const config: AppConfig = {
    databaseUrl: url('DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/lmfleet', ['postgres:', 'postgresql:']),
    redisUrl: url('REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']),
    queuePrefix,
    artifactDir: path.resolve(str('ARTIFACT_DIR', 'var/artifacts')),
    modelRoots,
    port: int('PORT', 3000, 0, 65535),
    host: str('API_HOST', '0.0.0.0'),
    apiKeys: [...new Set(apiKeys)],
    bodyLimitBytes: int('BODY_LIMIT_BYTES', 4 * 1024 * 1024, 1024),
    runMigrations: runMigrations === 'true',
    jobs: {
      attempts: int('JOB_ATTEMPTS', 3, 1, 100),
      backoffMs: int('JOB_BACKOFF_MS', 2000, 0),
    },
    serving: {
      deploymentPollMs: int('SERVE_DEPLOYMENT_POLL_MS', 2000, 50),
      streamTimeoutMs: int('SERVE_STREAM_TIMEOUT_MS', 600_000, 100),
    },
    worker: {
      name: env.WORKER_NAME?.trim() || undefined,
      concurrency: int('WORKER_CONCURRENCY', 1, 1, 1024),
      lockDurationMs: int('LOCK_DURATION_MS', 30000, 500),
      stalledIntervalMs: int('STALLED_INTERVAL_MS', 30000, 500),
      maxStalledCount: int('MAX_STALLED_COUNT', 2, 0, 100),
      heartbeatIntervalMs,
      heartbeatTimeoutMs: int('HEARTBEAT_TIMEOUT_MS', heartbeatIntervalMs * 4, 1),
      shutdownGraceMs: int('SHUTDOWN_GRACE_MS', 10000, 0),
      inferDeployments: deployments,
      engineBackend: backend as AppConfig['worker']['engineBackend'],
      engineThreads: int('ENGINE_THREADS', 0, 0, 1024),
      cudaVisibleDevices: env.CUDA_VISIBLE_DEVICES?.trim() || undefined,
    },
  };
  if (config.worker.heartbeatTimeoutMs <= config.worker.heartbeatIntervalMs) {
    problems.push('HEARTBEAT_TIMEOUT_MS must be greater than HEARTBEAT_INTERVAL_MS');
  }
  if (problems.length) throw new ConfigError(problems);
  return config;
}

/** DI token for the AppConfig object. */
export const APP_CONFIG = Symbol('APP_CONFIG');
