import { ValidationPipe, type ValidationError } from '@nestjs/common';
import { InvalidInputError } from '../errors';
import { describeFieldErrors, flattenValidationErrors } from '../jobs/job-params';

/** Turns class-validator errors into a 400 that names each field and why. */
export function validationFailure(errors: ValidationError[]): InvalidInputError {
  const fields = flattenValidationErrors(errors);
  return new InvalidInputError(describeFieldErrors(fields) || 'invalid request', fields);
}

/** The API's one validation pipe: DTOs are whitelisted, unknown fields are refused. */
export function createValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    forbidUnknownValues: true,
    transform: true,
    transformOptions: { enableImplicitConversion: false },
    exceptionFactory: validationFailure,
  });
}
