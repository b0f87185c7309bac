import { EventEmitter } from 'node:events';
import { httpMetricsMiddleware, routeLabel } from './http-metrics.middleware';

describe('routeLabel', () => {
  it('uses the matched route template, or says why there is none', () => {
    expect(routeLabel({ method: 'GET', route: { path: '/jobs/:id' } }, 200)).toBe('/jobs/:id');
    expect(routeLabel({ method: 'GET', route: { path: '/:id' }, baseUrl: '/jobs' }, 200)).toBe('/jobs/:id');
    expect(routeLabel({ method: 'GET' }, 404)).toBe('(unmatched)');
    expect(routeLabel({ method: 'POST' }, 413)).toBe('(before routing)');
  });
});

describe('httpMetricsMiddleware', () => {
  it('records each request once, on finish or close', () => {
    const seen: unknown[][] = [];
    const mw = httpMetricsMiddleware({ observeHttp: (...a: unknown[]) => void seen.push(a) } as never);
    const res = Object.assign(new EventEmitter(), { statusCode: 200 });
    const req: { method: string; route?: { path: string } } = { method: 'GET' };
    let nexted = false;
    mw(req, res, () => (nexted = true));
    expect(nexted).toBe(true);
    req.route = { path: '/models' };
    res.emit('finish');
    res.emit('close');
    expect(seen).toHaveLength(1);
    expect(seen[0].slice(0, 3)).toEqual(['GET', '/models', 200]);
    expect(seen[0][3]).toBeGreaterThanOrEqual(0);
  });
});
