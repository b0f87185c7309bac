import type { ValueTransformer } from 'typeorm';

/** Postgres bigint comes back as a string; our sizes fit in a double (< 2^53 bytes). */
export const bigintToNumber: ValueTransformer = {
  to: (v: number | null | undefined) => v,
  from: (v: string | null) => (v === null || v === undefined ? null : Number(v)),
};

/** jsonb object columns (`any` values keep TypeORM's QueryDeepPartialEntity happy). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type JsonObject = { [key: string]: any };
