import { SetMetadata } from '@nestjs/common';
import type { JobName } from '../queue/jobs';

export const ON_JOB = Symbol('lmfleet:on-job');

/** Marks a service method as THE handler of a job name; workers check at startup that there is exactly one. */
export const OnJob = (name: JobName): MethodDecorator => SetMetadata(ON_JOB, name);

export interface HandlerRef {
  name: JobName;
  owner: string;
}

/** Startup check (pure): every owned job has exactly one handler, and no handler is for a job we don't own. */
export function handlerProblems(owned: readonly JobName[], found: HandlerRef[]): string[] {
  const problems: string[] = [];
  for (const name of owned) {
    const hs = found.filter((h) => h.name === name);
    if (hs.length === 0) problems.push(`job "${name}" has no handler`);
    if (hs.length > 1) problems.push(`job "${name}" has ${hs.length} handlers: ${hs.map((h) => h.owner).join(', ')}`);
  }
  for (const h of found) {
    if (!owned.includes(h.name)) problems.push(`${h.owner} handles "${h.name}", which this worker does not own`);
  }
  return problems;
}
