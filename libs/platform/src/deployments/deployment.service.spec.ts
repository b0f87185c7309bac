import type { AppConfig } from '../config';
import type { DeploymentEntity } from '../db/entities/deployment.entity';
import { InvalidInputError } from '../errors';
import type { NewDeployment } from '../repositories/deployment.repository';
import { DeploymentService, type CreateDeployment } from './deployment.service';

const VERSION = '3f2b7c1e-8a9d-4e5f-9b0a-1c2d3e4f5a6b';

/** The service over in-memory stand-ins for its repositories (test/integration/serving.test.ts runs it on Postgres). */
function service() {
  const created: NewDeployment[] = [];
  const deployments = {
    findByName: async () => null,
    create: async (d: NewDeployment): Promise<DeploymentEntity> => {
      created.push(d);
      return { ...d, id: 'd1', createdAt: new Date() } as DeploymentEntity;
    },
  };
  const models = { findVersion: async (id: string) => (id === VERSION ? { id } : null) };
  const svc = new DeploymentService({} as AppConfig, deployments as never, models as never, {} as never, {} as never, {} as never, {} as never);
  return { svc, created };
}

async function refusal(input: Partial<CreateDeployment>): Promise<InvalidInputError> {
  const { svc, created } = service();
  const err = await svc.create({ name: 'd', versionId: VERSION, ...input }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InvalidInputError);
  expect(created).toHaveLength(0);
  return err as InvalidInputError;
}

describe('DeploymentService.create: speculative', () => {
  it('stores a valid setting as given, and null when absent or null', async () => {
    const { svc, created } = service();
    const speculative = { method: 'ngram' as const, numDraftTokens: 4, promptLookupMax: 3 };
    const view = await svc.create({ name: 'a', versionId: VERSION, speculative });
    expect(view.speculative).toEqual(speculative);
    expect(created[0].speculative).toEqual(speculative);
    expect(created[0].speculative).not.toBe(speculative); // a copy: the caller's object is not kept
    await svc.create({ name: 'b', versionId: VERSION });
    await svc.create({ name: 'c', versionId: VERSION, speculative: null });
    expect(created.slice(1).map((d) => d.speculative)).toEqual([null, null]);
  });

  it.each([
    [{ method: 'medusa', numDraftTokens: 4 }, /speculative\.method must be "ngram" \(draft-model methods are not supported\)/],
    [{ method: 'ngram', numDraftTokens: 0 }, /speculative\.numDraftTokens must be an integer in \[1, 15\]; got 0/],
    [{ method: 'ngram', numDraftTokens: 16 }, /speculative\.numDraftTokens must be an integer in \[1, 15\]; got 16/],
    [{ method: 'ngram', numDraftTokens: 4, promptLookupMax: 0 }, /speculative\.promptLookupMax must be an integer in \[1, 64\]; got 0/],
    [{ method: 'ngram', numDraftTokens: 4, promptLookupMin: 5 }, /speculative\.promptLookupMin must be an integer in \[1, 4\]; got 5/],
    [{ method: 'ngram', numDraftTokens: 4, draftModel: '/m' }, /speculative: unknown field "draftModel"/],
    ['ngram', /speculative must be an object/],
  ])('refuses %j naming the field', async (speculative, why) => {
    const err = await refusal({ speculative: speculative as never });
    expect(err.message).toMatch(why);
    expect(err.details).toEqual([{ field: 'speculative', errors: [err.message] }]);
  });
});
