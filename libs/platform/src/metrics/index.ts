export * from './serving-metrics';
export * from './http-metrics.middleware';
