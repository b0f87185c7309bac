import IORedis, { type RedisOptions } from 'ioredis';

/** ioredis connection for BullMQ (workers need maxRetriesPerRequest: null). */
export function createRedis(url: string, opts: RedisOptions = {}): IORedis {
  return new IORedis(url, { maxRetriesPerRequest: null, ...opts });
}
