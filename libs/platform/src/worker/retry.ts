import { UnrecoverableError } from 'bullmq';
import { InvalidInputError } from '../errors';

/** Whether a failed attempt is the last: bad input never retries, others retry until attempts run out. */
export function isFinalFailure(err: unknown, attemptsMade: number, attempts: number): boolean {
  if (err instanceof UnrecoverableError || err instanceof InvalidInputError) return true;
  return attemptsMade + 1 >= Math.max(1, attempts);
}
