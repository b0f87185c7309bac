import 'reflect-metadata';
import type { ArgumentMetadata } from '@nestjs/common';
import { createValidationPipe, InvalidInputError } from '@lmfleet/platform';
import { PageQuery } from './common.dto';
import { CreateJobDto, ListJobsQuery, QuantizePipelineDto } from './job.dto';
import { RegisterModelDto } from './model.dto';

const pipe = createValidationPipe();
const body = (metatype: ArgumentMetadata['metatype']): ArgumentMetadata => ({ type: 'body', metatype });
const query = (metatype: ArgumentMetadata['metatype']): ArgumentMetadata => ({ type: 'query', metatype });

async function fields(value: unknown, meta: ArgumentMetadata): Promise<string[]> {
  try {
    await pipe.transform(value, meta);
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidInputError);
    return ((e as InvalidInputError).details as Array<{ field: string }>).map((d) => d.field);
  }
  throw new Error('expected a validation error');
}

describe('API DTOs', () => {
  it('RegisterModelDto: path required, no extra fields', async () => {
    await expect(pipe.transform({ path: '/m/x', name: 'x' }, body(RegisterModelDto))).resolves.toMatchObject({ path: '/m/x' });
    expect(await fields({}, body(RegisterModelDto))).toEqual(['path']);
    expect(await fields({ path: 5 }, body(RegisterModelDto))).toEqual(['path']);
    expect(await fields({ path: '/m', admin: true }, body(RegisterModelDto))).toEqual(['admin']);
    expect(await fields({ path: '/m', name: '' }, body(RegisterModelDto))).toEqual(['name']);
  });

  it('CreateJobDto: type from the job list, params an object', async () => {
    await expect(pipe.transform({ type: 'eval', params: {} }, body(CreateJobDto))).resolves.toBeInstanceOf(CreateJobDto);
    expect(await fields({ type: 'train', params: {} }, body(CreateJobDto))).toEqual(['type']);
    expect(await fields({ type: 'eval', params: 'x' }, body(CreateJobDto))).toEqual(['params']);
    expect(await fields({ type: 'eval' }, body(CreateJobDto))).toEqual(['params']);
  });

  it('QuantizePipelineDto: versionId uuid, calibrate and eval params', async () => {
    expect(await fields({ versionId: 'nope', calibrate: {}, eval: {} }, body(QuantizePipelineDto))).toEqual(['versionId']);
    expect(await fields({ versionId: '3f2b7c1e-8a9d-4e5f-9b0a-1c2d3e4f5a6b' }, body(QuantizePipelineDto))).toEqual(['calibrate', 'eval']);
  });

  it('query strings become numbers with defaults; bad filters are named', async () => {
    const q = (await pipe.transform({ limit: '10' }, query(ListJobsQuery))) as ListJobsQuery;
    expect(q).toMatchObject({ limit: 10, offset: 0 });
    expect(await pipe.transform({}, query(PageQuery))).toMatchObject({ limit: 50, offset: 0 });
    expect(await fields({ limit: '0' }, query(PageQuery))).toEqual(['limit']);
    expect(await fields({ status: 'done', versionId: '1' }, query(ListJobsQuery))).toEqual(['status', 'versionId']);
  });
});
