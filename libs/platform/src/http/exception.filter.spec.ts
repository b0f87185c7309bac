import { BadRequestException, NotFoundException } from '@nestjs/common';
import { QueryFailedError } from 'typeorm';
import { ConflictError, InvalidInputError, NotFoundError } from '../errors';
import { toErrorBody } from './exception.filter';

describe('toErrorBody', () => {
  it('maps platform errors', () => {
    expect(toErrorBody(new InvalidInputError('path: bad', [{ field: 'path' }]))).toEqual({ statusCode: 400, error: 'Bad Request', message: 'path: bad', details: [{ field: 'path' }] });
    expect(toErrorBody(new NotFoundError('job', 'x'))).toEqual({ statusCode: 404, error: 'Not Found', message: 'job x not found' });
    expect(toErrorBody(new ConflictError('dup')).statusCode).toBe(409);
  });
  it('maps Nest HTTP exceptions', () => {
    expect(toErrorBody(new BadRequestException('Validation failed (uuid is expected)'))).toMatchObject({ statusCode: 400, message: 'Validation failed (uuid is expected)' });
    expect(toErrorBody(new NotFoundException())).toMatchObject({ statusCode: 404 });
  });
  it('maps body-parser errors to 4xx', () => {
    expect(toErrorBody(Object.assign(new SyntaxError('x'), { status: 400, type: 'entity.parse.failed' }))).toMatchObject({ statusCode: 400, message: 'request body is not valid JSON: x' });
    expect(toErrorBody(Object.assign(new Error('request entity too large'), { status: 413, type: 'entity.too.large', limit: 1024, length: 5000 }))).toMatchObject({
      statusCode: 413,
      message: 'request body of 5000 bytes is larger than the limit of 1024 bytes (BODY_LIMIT_BYTES)',
    });
  });
  it('maps Postgres errors and hides everything else', () => {
    const pg = (code: string) => new QueryFailedError('q', [], Object.assign(new Error('e'), { code }));
    expect(toErrorBody(pg('23505')).statusCode).toBe(409);
    expect(toErrorBody(pg('22P02')).statusCode).toBe(400);
    expect(toErrorBody(new Error('secret stack'))).toEqual({ statusCode: 500, error: 'Internal Server Error', message: 'internal error' });
  });
});
