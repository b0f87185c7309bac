import { Controller, Get, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { ServingMetrics } from '@lmfleet/platform';

/** Prometheus text exposition (needs the API key when API_KEYS is set: Prometheus' `authorization` config). */
@ApiExcludeController()
@Controller('metrics')
export class MetricsController {
  constructor(private readonly metrics: ServingMetrics) {}

  @Get()
  async scrape(@Res() res: { setHeader(k: string, v: string): void; end(b: string): void }): Promise<void> {
    const { contentType, body } = await this.metrics.render();
    res.setHeader('Content-Type', contentType); // as prom-client spells it (express' res.type() would add a charset)
    res.end(body);
  }
}
