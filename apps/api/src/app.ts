import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { AllExceptionsFilter, createValidationPipe, type PlatformModuleOptions } from '@lmfleet/platform';
import { ApiModule } from './app.module';

/** Builds the API app (used by main.ts and by the integration tests). */
export async function createApiApp(opts: PlatformModuleOptions, logger: false | undefined = undefined): Promise<INestApplication> {
  const app = await NestFactory.create(ApiModule.forRoot(opts), { logger: logger === false ? false : undefined, bodyParser: true });
  app.useGlobalPipes(createValidationPipe());
  app.useGlobalFilters(new AllExceptionsFilter());
  const doc = new DocumentBuilder()
    .setTitle('LMFleet')
    .setDescription('Register models, quantize them (calibrate → auto_awq → convert → eval), run inference jobs')
    .setVersion('0.1.0')
    .build();
  SwaggerModule.setup('docs', app, () => SwaggerModule.createDocument(app, doc));
  return app;
}
