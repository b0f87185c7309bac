import { InvalidInputError } from '../errors';
import { JobName } from '../queue/jobs';
import { validateJobParams } from './job-params';

const V = '3f2b7c1e-8a9d-4e5f-9b0a-1c2d3e4f5a6b';

function fieldsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidInputError);
    return ((e as InvalidInputError).details as Array<{ field: string }>).map((d) => d.field);
  }
  throw new Error('expected a validation error');
}

describe('validateJobParams', () => {
  it('accepts typed params per job', () => {
    expect(validateJobParams(JobName.Eval, { versionId: V, datasetFile: '/m/x.txt', seqlen: 128 })).toMatchObject({ seqlen: 128 });
    expect(validateJobParams(JobName.Infer, { versionId: V, prompts: ['hi'], maxNewTokens: 4 }).prompts).toEqual(['hi']);
    expect(validateJobParams(JobName.AutoAwq, { wBits: 4, wGroupSize: 128 })).toMatchObject({ wBits: 4 });
    expect(validateJobParams(JobName.Calibrate, { versionId: V, calibDataset: '/m/c.txt' })).toMatchObject({ versionId: V });
    expect(fieldsOf(() => validateJobParams(JobName.Calibrate, { versionId: V }))).toEqual(['params.calibDataset']);
  });

  it('names each bad field with the prefix', () => {
    expect(fieldsOf(() => validateJobParams(JobName.Eval, { versionId: 'x', seqlen: 1.5 }))).toEqual(['params.versionId', 'params.datasetFile', 'params.seqlen']);
    expect(fieldsOf(() => validateJobParams(JobName.Infer, { versionId: V, prompts: [] }, 'p'))).toEqual(['p.prompts']);
    expect(fieldsOf(() => validateJobParams(JobName.Infer, { versionId: V, prompts: [1] }))).toEqual(['params.prompts']);
    expect(fieldsOf(() => validateJobParams(JobName.AutoAwq, { wBits: 3 }))).toEqual(['params.wBits']);
  });

  it('refuses unknown fields and non-objects', () => {
    expect(fieldsOf(() => validateJobParams(JobName.Convert, { versionId: V, hack: true }))).toEqual(['params.hack']);
    expect(fieldsOf(() => validateJobParams(JobName.Convert, 'str'))).toEqual(['params']);
    expect(fieldsOf(() => validateJobParams(JobName.Convert, [1]))).toEqual(['params']);
  });

  it('the message says why', () => {
    expect(() => validateJobParams(JobName.Eval, { versionId: V, datasetFile: '/x', seqlen: 4 })).toThrow(/params.seqlen: seqlen must not be less than 8/);
  });
});
