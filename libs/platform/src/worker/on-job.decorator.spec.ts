import { JobName } from '../queue/jobs';
import { handlerProblems } from './on-job.decorator';

describe('handlerProblems (worker startup check)', () => {
  const owned = [JobName.Calibrate, JobName.Eval];
  it('passes with exactly one handler per owned job', () => {
    expect(handlerProblems(owned, [{ name: JobName.Calibrate, owner: 'A.c' }, { name: JobName.Eval, owner: 'A.e' }])).toEqual([]);
  });
  it('reports missing, duplicate and foreign handlers', () => {
    const p = handlerProblems(owned, [
      { name: JobName.Eval, owner: 'A.e' },
      { name: JobName.Eval, owner: 'B.e' },
      { name: JobName.Infer, owner: 'C.i' },
    ]);
    expect(p).toEqual([
      'job "calibrate" has no handler',
      'job "eval" has 2 handlers: A.e, B.e',
      'C.i handles "infer", which this worker does not own',
    ]);
  });
});
