import type { AppConfig } from '../config';
import { ServingEvents, type ServingEvent } from '../serving/serving-events';
import { ServingMetrics } from './serving-metrics';

/** A finished chat on deployment `d` (usage as the API read it from the worker's `end` event). */
function finished(deployment: string, usage: Partial<Extract<ServingEvent, { type: 'finished' }>>): ServingEvent {
  return {
    type: 'finished', deployment, kind: 'chat', requestId: 'r', status: 200, outcome: 'ok', queuedMs: null, ttftMs: 5, totalMs: 20,
    promptTokens: 10, cachedTokens: 0, completionTokens: 8, draftTokens: 0, acceptedDraftTokens: 0, ...usage,
  };
}

describe('ServingMetrics: speculative decoding counters', () => {
  it('count each finished request\'s draft and accepted tokens per deployment', async () => {
    const events = new ServingEvents();
    const none = { list: async () => [] };
    const metrics = new ServingMetrics({ queuePrefix: 'x' } as AppConfig, events, {} as never, none as never, none as never, { redis: { defineCommand: () => undefined } } as never);
    metrics.onModuleInit();
    try {
      events.emit(finished('spec', { draftTokens: 12, acceptedDraftTokens: 5 }));
      events.emit(finished('spec', { draftTokens: 3, acceptedDraftTokens: 3 }));
      events.emit(finished('plain', {}));
      events.emit(finished('spec', { kind: 'tokenize', draftTokens: 100, acceptedDraftTokens: 100 })); // never: tokenization generates nothing
      const text = (await metrics.render()).body;
      expect(text).toContain('lmfleet_spec_draft_tokens_total{deployment="spec"} 15\n');
      expect(text).toContain('lmfleet_spec_accepted_tokens_total{deployment="spec"} 8\n');
      expect(text).not.toMatch(/lmfleet_spec_\w+_total\{deployment="plain"\}/); // a deployment that does not speculate has no samples
      expect(text).toContain('# HELP lmfleet_spec_accepted_tokens_total Of lmfleet_spec_draft_tokens_total, drafts the model accepted');
    } finally {
      metrics.onModuleDestroy();
    }
  });
});
