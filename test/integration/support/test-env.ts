// Each test file gets its own Postgres database (lmfleet_test_<random>), BullMQ prefix, artifact directory
// and model root, and removes all of them afterwards.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import IORedis from 'ioredis';
import { Client } from 'pg';
import { loadConfig, type AppConfig } from '@lmfleet/platform';

export interface TestEnv {
  config: AppConfig;
  dbName: string;
  databaseUrl: string;
  modelRoot: string;
  /** Environment for child processes (e2e). */
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

const BASE_DB_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/lmfleet';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

function adminUrl(): string {
  const u = new URL(BASE_DB_URL);
  u.pathname = '/postgres';
  return u.toString();
}

export async function createTestEnv(extra: Record<string, string> = {}): Promise<TestEnv> {
  const suffix = randomBytes(5).toString('hex');
  const dbName = `lmfleet_test_${suffix}`;
  const admin = new Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${dbName}"`);
  await admin.end();
  const dbUrl = new URL(BASE_DB_URL);
  dbUrl.pathname = `/${dbName}`;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `lmfleet-test-${suffix}-`));
  const modelRoot = path.join(tmp, 'models');
  const artifactDir = path.join(tmp, 'artifacts');
  fs.mkdirSync(modelRoot, { recursive: true });
  fs.mkdirSync(artifactDir, { recursive: true });
  const prefix = `lmft-${suffix}`;
  const env: Record<string, string> = {
    DATABASE_URL: dbUrl.toString(),
    REDIS_URL,
    REDIS_PREFIX: prefix,
    ARTIFACT_DIR: artifactDir,
    MODEL_ROOTS: modelRoot,
    JOB_ATTEMPTS: '3',
    JOB_BACKOFF_MS: '200',
    LOCK_DURATION_MS: '3000',
    STALLED_INTERVAL_MS: '1000',
    HEARTBEAT_INTERVAL_MS: '500',
    HEARTBEAT_TIMEOUT_MS: '3000',
    SHUTDOWN_GRACE_MS: '2000',
    ...extra,
  };
  const config = loadConfig(env);
  return {
    config,
    dbName,
    databaseUrl: dbUrl.toString(),
    modelRoot,
    env,
    async cleanup() {
      const a = new Client({ connectionString: adminUrl() });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
      await a.end();
      await deleteRedisPrefix(REDIS_URL, prefix);
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}

export async function deleteRedisPrefix(url: string, prefix: string): Promise<void> {
  const redis = new IORedis(url, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** A directory that looks like a Hugging Face model to the fake engine. */
export function writeFakeModel(root: string, name: string): string {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' }));
  fs.writeFileSync(path.join(dir, 'eval.txt'), 'the quick brown fox jumps over the lazy dog\n'.repeat(50));
  return dir;
}

export async function waitFor<T>(fn: () => Promise<T | undefined | null | false>, what: string, timeoutMs = 20000, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v as T;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}
