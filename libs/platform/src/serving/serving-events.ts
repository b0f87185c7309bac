// Where the API observes serving: the metrics layer (Prometheus /metrics) subscribes here instead of reaching into
// the request path. Listeners run synchronously and must be cheap; a throwing listener is logged and ignored.
import { Injectable, Logger } from '@nestjs/common';
import type { ServeKind } from './protocol';

export type ServingEvent =
  /** Admitted and enqueued. */
  | { type: 'admitted'; deployment: string; kind: ServeKind; requestId: string }
  /** Refused before enqueueing: 404 unknown model, 429 over the queue bound, 400 bad request (after parsing). */
  | { type: 'rejected'; deployment: string | null; kind: ServeKind; status: number }
  | { type: 'first_token'; deployment: string; kind: ServeKind; requestId: string; ttftMs: number }
  /** A delta with `tokens` tokens, `gapMs` after the previous one of the same choice (`first`: after the request arrived). */
  | { type: 'tokens'; deployment: string; kind: ServeKind; requestId: string; tokens: number; gapMs: number; first: boolean }
  | {
      type: 'finished';
      deployment: string;
      kind: ServeKind;
      requestId: string;
      /** HTTP status sent (a mid-stream failure keeps the 200 it started with). */
      status: number;
      /** 'stop' | 'length' | 'cancelled' (client left) | 'error' */
      outcome: string;
      queuedMs: number | null;
      ttftMs: number | null;
      totalMs: number;
      promptTokens: number;
      /** Of promptTokens, taken from the prefix cache (0 where the deployment does not cache). */
      cachedTokens: number;
      completionTokens: number;
      /** Speculative decoding: draft tokens verified, and of those accepted (0 where the deployment does not speculate). */
      draftTokens: number;
      acceptedDraftTokens: number;
    };

@Injectable()
export class ServingEvents {
  private readonly logger = new Logger(ServingEvents.name);
  private readonly listeners: Array<(e: ServingEvent) => void> = [];

  subscribe(fn: (e: ServingEvent) => void): () => void {
    this.listeners.push(fn);
    return () => {
      const i = this.listeners.indexOf(fn);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  emit(e: ServingEvent): void {
    for (const fn of this.listeners) {
      try {
        fn(e);
      } catch (err) {
        this.logger.warn(`serving listener failed on ${e.type}: ${(err as Error).message}`);
      }
    }
  }
}
