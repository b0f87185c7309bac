import 'reflect-metadata';
import { ValidationPipe, type ArgumentMetadata } from '@nestjs/common';
import { createValidationPipe, InvalidInputError, VALIDATION_OPTIONS } from '@lmfleet/platform';
import { PageQuery } from './common.dto';
import { CreateDeploymentDto } from './deployment.dto';
import { CreateJobDto, ListJobsQuery, QuantizePipelineDto } from './job.dto';
import { RegisterModelDto } from './model.dto';
import { ChatCompletionDto, CompletionDto, DetokenizeDto, EncodeDto, InteractiveDto, TokenizeDto } from './openai.dto';

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

  it('CreateDeploymentDto: speculative by the engine\'s rules, a bad one named with the engine\'s reason', async () => {
    const uuid = '3f2b7c1e-8a9d-4e5f-9b0a-1c2d3e4f5a6b';
    const ok = async (speculative: unknown) => (await pipe.transform({ name: 'd', versionId: uuid, speculative }, body(CreateDeploymentDto))) as CreateDeploymentDto;
    expect((await ok({ method: 'ngram', numDraftTokens: 4 })).speculative).toEqual({ method: 'ngram', numDraftTokens: 4 });
    expect((await ok({ method: 'ngram', numDraftTokens: 15, promptLookupMax: 64, promptLookupMin: 64 })).speculative).toMatchObject({ numDraftTokens: 15 });
    expect((await ok(null)).speculative).toBeNull(); // off
    const refused = async (speculative: unknown): Promise<string> => {
      try {
        await pipe.transform({ name: 'd', versionId: uuid, speculative }, body(CreateDeploymentDto));
      } catch (e) {
        const details = (e as InvalidInputError).details as Array<{ field: string; errors: string[] }>;
        expect(details.map((d) => d.field)).toEqual(['speculative']);
        return details[0].errors.join('; ');
      }
      throw new Error(`expected ${JSON.stringify(speculative)} to be refused`);
    };
    expect(await refused({ method: 'eagle3', numDraftTokens: 4 })).toMatch(/speculative\.method must be "ngram" \(draft-model methods are not supported\); got "eagle3"/);
    expect(await refused({ method: 'ngram' })).toMatch(/speculative\.numDraftTokens must be an integer in \[1, 15\]; got undefined/);
    expect(await refused({ method: 'ngram', numDraftTokens: 0 })).toMatch(/numDraftTokens must be an integer in \[1, 15\]; got 0/);
    expect(await refused({ method: 'ngram', numDraftTokens: 16 })).toMatch(/numDraftTokens .*got 16/);
    expect(await refused({ method: 'ngram', numDraftTokens: 2.5 })).toMatch(/numDraftTokens .*got 2.5/);
    expect(await refused({ method: 'ngram', numDraftTokens: '4' })).toMatch(/numDraftTokens .*got "4"/);
    expect(await refused({ method: 'ngram', numDraftTokens: 4, promptLookupMax: 65 })).toMatch(/promptLookupMax must be an integer in \[1, 64\]/);
    expect(await refused({ method: 'ngram', numDraftTokens: 4, promptLookupMax: 2, promptLookupMin: 3 })).toMatch(/promptLookupMin must be an integer in \[1, 2\]; got 3/);
    expect(await refused({ method: 'ngram', numDraftTokens: 4, model: 'draft' })).toMatch(/unknown field "model"/);
    expect(await refused('ngram')).toMatch(/speculative must be an object/);
    expect(await refused([])).toMatch(/speculative\.method must be "ngram"/);
  });

  it('query strings become numbers with defaults; bad filters are named', async () => {
    const q = (await pipe.transform({ limit: '10' }, query(ListJobsQuery))) as ListJobsQuery;
    expect(q).toMatchObject({ limit: 10, offset: 0 });
    expect(await pipe.transform({}, query(PageQuery))).toMatchObject({ limit: 50, offset: 0 });
    expect(await fields({ limit: '0' }, query(PageQuery))).toEqual(['limit']);
    expect(await fields({ status: 'done', versionId: '1' }, query(ListJobsQuery))).toEqual(['status', 'versionId']);
  });

  it('the fast path for bodies agrees with class-transformer + class-validator on random bodies, and takes valid OpenAI bodies', async () => {
    const full = new ValidationPipe(VALIDATION_OPTIONS);
    const seed = Number(process.env.DTO_FUZZ_SEED ?? Date.now() % 1_000_000);
    let state = seed;
    const rand = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
    const uuid = '3f2b7c1e-8a9d-4e5f-9b0a-1c2d3e4f5a6b';
    const values: unknown[] = [
      undefined, null, true, false, 0, -1, 1, 2, 1.5, 2.5, -2.5, 0.005, 20, 21, 128, 129, 2 ** 60, -(2 ** 60), 'x', '', 'a b', uuid, 'int8',
      [], ['a'], ['a', 'b', 'c', 'd', 'e'], [1], [{ role: 'user', content: 'hi' }], {}, { include_usage: true }, { include_usage: 'yes' }, { extra: 1 },
    ];
    const cases: Array<[new () => object, Record<string, unknown>]> = [
      [ChatCompletionDto, { model: 'm', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 32, temperature: 0, ignore_eos: true, stream: true, stream_options: { include_usage: true } }],
      [CompletionDto, { model: 'm', prompt: ['a', 'b'], max_tokens: 16, n: 2, logprobs: 1, echo: true, stop: 'x', seed: 3, top_p: 0.9, min_p: 0.05 }],
      [InteractiveDto, { prompt: 'hi', session_id: 4, interactive_mode: true, stream: false, request_output_len: 8 }],
      [TokenizeDto, { model: 'm', prompt: 'hi', add_special_tokens: false }],
      [DetokenizeDto, { model: 'm', tokens: [1, 2, 3] }],
      [EncodeDto, { input: ['a', 'b'], do_preprocess: false, add_bos: true }],
      [CreateDeploymentDto, { name: 'd-1', versionId: uuid, kvPolicy: 'int8', maxBatchSize: 4, speculative: { method: 'ngram', numDraftTokens: 3 } }],
      [RegisterModelDto, { path: '/m/x' }],
      [CreateJobDto, { type: 'eval', params: {} }],
    ];
    for (const [dto, valid] of cases) {
      const meta = body(dto);
      const keys = [...Object.keys(new dto()), 'unknown_field', '__proto__'];
      for (let i = 0; i < 400; i++) {
        const b: Record<string, unknown> = { ...valid };
        if (i > 0) for (let k = 0, n = 1 + Math.floor(rand() * 3); k < n; k++) b[pick(keys)] = pick(values);
        for (const key of Object.keys(b)) if (b[key] === undefined) delete b[key];
        const got = await pipe.transform(structuredClone(b), meta).then((v) => ({ v }), (e: unknown) => ({ e }));
        const want = await full.transform(structuredClone(b), meta).then((v) => ({ v }), (e: unknown) => ({ e }));
        const where = `${dto.name} ${JSON.stringify(b)} (DTO_FUZZ_SEED=${seed})`;
        expect([where, 'e' in got]).toEqual([where, 'e' in want]);
        if ('v' in got && 'v' in want) {
          expect(got.v).toBeInstanceOf(dto);
          expect([where, JSON.parse(JSON.stringify(got.v))]).toEqual([where, JSON.parse(JSON.stringify(want.v))]);
        } else {
          expect([where, ((got as { e: InvalidInputError }).e.details as unknown[])]).toEqual([where, ((want as { e: InvalidInputError }).e.details as unknown[])]);
        }
      }
    }
    // The fast path is taken (not just safe): a valid OpenAI body never reaches class-transformer + class-validator.
    const spy = jest.spyOn(ValidationPipe.prototype, 'transform');
    for (const [dto, valid] of cases.slice(0, 3)) await pipe.transform(structuredClone(valid), body(dto));
    expect(spy).not.toHaveBeenCalled();
    await pipe.transform({ ...cases[0][1], n: 0 }, body(ChatCompletionDto)).catch(() => undefined);
    expect(spy).toHaveBeenCalledTimes(1); // an invalid one does, for its errors
    spy.mockRestore();
  });
});
