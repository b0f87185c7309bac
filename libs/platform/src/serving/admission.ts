// Backpressure: at most `limit` requests of a deployment admitted at once (waiting in its queue + running), counted
// atomically in Redis so that several API processes share one bound. Each admitted request is a sorted-set member
// scored by its expiry, so a request whose API process died stops counting after `ttlMs`.
import type IORedis from 'ioredis';

// Returns the number admitted with this one (>= 1), or 0 when the bound is reached.
const ACQUIRE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return n + 1
`;

/** ioredis custom command: EVALSHA (the script's text crosses the wire once per connection, not per request). */
const COMMAND = 'lmfleetAdmissionAcquire';
type WithAcquire = IORedis & { [COMMAND](key: string, now: string, expiry: string, limit: string, member: string, ttl: string): Promise<number> };

export class Admission {
  /** What the last acquire of each key saw (this process only; releases are not seen, so it errs high). */
  private readonly lastCount = new Map<string, number>();

  constructor(
    private readonly redis: IORedis,
    private readonly ttlMs = 15 * 60_000,
  ) {
    if (!(COMMAND in redis)) redis.defineCommand(COMMAND, { numberOfKeys: 1, lua: ACQUIRE });
  }

  /**
   * True when admitted; false when `limit` requests are already in. `ordered`: sent as EVAL, never EVALSHA, so that
   * Redis runs it before any command issued after it on the same connection (an EVALSHA that meets NOSCRIPT is
   * re-sent after the reply, behind them).
   */
  async acquire(key: string, member: string, limit: number, opts: { ordered?: boolean } = {}): Promise<boolean> {
    const now = Date.now();
    const args = [key, String(now), String(now + this.ttlMs), String(limit), member, String(this.ttlMs)] as const;
    const r = Number(opts.ordered ? await this.redis.eval(ACQUIRE, 1, ...args) : await (this.redis as WithAcquire)[COMMAND](...args));
    this.lastCount.set(key, r > 0 ? r : limit);
    if (this.lastCount.size > 10_000) this.lastCount.delete(this.lastCount.keys().next().value as string);
    return r > 0;
  }

  /** Whether the last acquire of `key` here saw it below half its bound (unknown: no). */
  roomy(key: string, limit: number): boolean {
    const n = this.lastCount.get(key);
    return n !== undefined && n * 2 <= limit;
  }

  /** Whether `member` holds a slot now. */
  async holds(key: string, member: string): Promise<boolean> {
    return (await this.redis.zscore(key, member)) !== null;
  }

  async release(key: string, member: string): Promise<void> {
    await this.redis.zrem(key, member);
  }

  /** Requests admitted now (expired ones not counted). */
  async count(key: string): Promise<number> {
    return this.redis.zcount(key, String(Date.now()), '+inf');
  }
}
