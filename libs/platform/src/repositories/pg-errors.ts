import { QueryFailedError } from 'typeorm';

/** Postgres SQLSTATE of a failed query, if that is what `err` is. */
export function pgCode(err: unknown): string | undefined {
  if (err instanceof QueryFailedError) return (err.driverError as { code?: string } | undefined)?.code;
  return undefined;
}
export const PG_UNIQUE_VIOLATION = '23505';
export const PG_FOREIGN_KEY_VIOLATION = '23503';
export const PG_INVALID_TEXT = '22P02';
