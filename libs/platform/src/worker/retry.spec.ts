import { UnrecoverableError } from 'bullmq';
import { InvalidInputError } from '../errors';
import { isFinalFailure } from './retry';

describe('isFinalFailure', () => {
  it('bad input and unrecoverable errors never retry', () => {
    expect(isFinalFailure(new InvalidInputError('x'), 0, 5)).toBe(true);
    expect(isFinalFailure(new UnrecoverableError('x'), 0, 5)).toBe(true);
  });
  it('other errors retry until attempts run out', () => {
    expect(isFinalFailure(new Error('x'), 0, 3)).toBe(false);
    expect(isFinalFailure(new Error('x'), 1, 3)).toBe(false);
    expect(isFinalFailure(new Error('x'), 2, 3)).toBe(true);
    expect(isFinalFailure(new Error('x'), 0, 1)).toBe(true);
  });
});
