import type { INestApplication } from '@nestjs/common';
import { NestFactory, Reflector } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { AllExceptionsFilter, ApiKeyGuard, createValidationPipe, httpMetricsMiddleware, InvalidInputError, ServingMetrics, type PlatformModuleOptions } from '@lmfleet/platform';
import { ApiModule } from './app.module';
import { mountDashboard } from './dashboard/static';

/** Builds the API app (used by main.ts and by the integration tests). */
export async function createApiApp(opts: PlatformModuleOptions, logger: false | undefined = undefined): Promise<INestApplication> {
  const app = await NestFactory.create<NestExpressApplication>(ApiModule.forRoot(opts), { logger: logger === false ? false : undefined, bodyParser: false });
  // Counted before the body parser, so its 413s and 400s are counted too (GET /metrics).
  app.use(httpMetricsMiddleware(app.get(ServingMetrics)));
  // Bodies beyond BODY_LIMIT_BYTES are a 413 and malformed JSON a 400, both with the reason (the filter).
  app.useBodyParser('json', { limit: opts.config.bodyLimitBytes });
  app.useBodyParser('urlencoded', { limit: opts.config.bodyLimitBytes, extended: true });
  // Nest turns body-parser's SyntaxError into a bare 400 with JSON.parse's message; say what it is instead.
  app.use((err: Error & { type?: string }, _req: unknown, _res: unknown, next: (e?: unknown) => void) =>
    next(err?.type === 'entity.parse.failed' ? new InvalidInputError(`request body is not valid JSON: ${err.message}`) : err),
  );
  app.useGlobalPipes(createValidationPipe());
  app.useGlobalFilters(new AllExceptionsFilter());
  app.useGlobalGuards(new ApiKeyGuard(opts.config.apiKeys, app.get(Reflector)));
  const doc = new DocumentBuilder()
    .setTitle('LMFleet')
    .setDescription('Register models, quantize them (calibrate → auto_awq → convert → eval), run inference jobs')
    .setVersion('0.1.0')
    .addBearerAuth()
    .build();
  SwaggerModule.setup('docs', app, () => SwaggerModule.createDocument(app, doc));
  mountDashboard(app, opts.config);
  return app;
}
