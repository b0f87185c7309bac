// Counts every HTTP request when its response ends (or the client goes away), labelled by the matched route's
// template (`/jobs/:id`), never the raw path, so ids and random 404 paths add no series.
import type { ServingMetrics } from './serving-metrics';
import { ROUTE_BEFORE_ROUTING, ROUTE_UNMATCHED } from './serving-metrics';

interface Req {
  method: string;
  route?: { path?: string };
  baseUrl?: string;
}
interface Res {
  statusCode: number;
  once(event: 'finish' | 'close', fn: () => void): unknown;
}

/** Route label: the template when a route matched; else 404 is unmatched and anything else was answered before routing. */
export function routeLabel(req: Req, status: number): string {
  const p = req.route?.path;
  if (typeof p === 'string') return (req.baseUrl ?? '') + p;
  return status === 404 ? ROUTE_UNMATCHED : ROUTE_BEFORE_ROUTING;
}

export function httpMetricsMiddleware(metrics: Pick<ServingMetrics, 'observeHttp'>) {
  return (req: Req, res: Res, next: () => void): void => {
    const started = process.hrtime.bigint();
    let done = false;
    const record = () => {
      if (done) return;
      done = true;
      metrics.observeHttp(req.method, routeLabel(req, res.statusCode), res.statusCode, Number(process.hrtime.bigint() - started) / 1e9);
    };
    res.once('finish', record);
    res.once('close', record);
    next();
  };
}
