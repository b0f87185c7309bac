// Backpressure: at most `limit` requests of a deployment admitted at once (waiting in its queue + running), counted
// atomically in Redis so that several API processes share one bound. Each admitted request is a sorted-set member
// scored by its expiry, so a request whose API process died stops counting after `ttlMs`.
import type IORedis from 'ioredis';

const ACQUIRE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`;

/** ioredis custom command: EVALSHA (the script's text crosses the wire once per connection, not per request). */
const COMMAND = 'lmfleetAdmissionAcquire';
type WithAcquire = IORedis & { [COMMAND](key: string, now: string, expiry: string, limit: string, member: string, ttl: string): Promise<number> };

export class Admission {
  constructor(
    private readonly redis: IORedis,
    private readonly ttlMs = 15 * 60_000,
  ) {
    if (!(COMMAND in redis)) redis.defineCommand(COMMAND, { numberOfKeys: 1, lua: ACQUIRE });
  }

  /** True when admitted; false when `limit` requests are already in. */
  async acquire(key: string, member: string, limit: number): Promise<boolean> {
    const now = Date.now();
    const r = await (this.redis as WithAcquire)[COMMAND](key, String(now), String(now + this.ttlMs), String(limit), member, String(this.ttlMs));
    return r === 1;
  }

  async release(key: string, member: string): Promise<void> {
    await this.redis.zrem(key, member);
  }

  /** Requests admitted now (expired ones not counted). */
  async count(key: string): Promise<number> {
    return this.redis.zcount(key, String(Date.now()), '+inf');
  }
}
