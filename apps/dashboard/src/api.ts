// The API client: JSON over fetch with the API key (when the server asks for one) as a Bearer token, and
// server-sent events read from fetch streams (EventSource cannot send an Authorization header).

const KEY_STORAGE = 'lmfleet.apiKey';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
  }
}

type AuthListener = (needed: boolean) => void;
const authListeners = new Set<AuthListener>();

export function onAuthRequired(fn: AuthListener): () => void {
  authListeners.add(fn);
  return () => authListeners.delete(fn);
}

export function getApiKey(): string | null {
  try {
    return localStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

export function setApiKey(key: string | null): void {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
  authListeners.forEach((fn) => fn(false));
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const key = getApiKey();
  return { ...(key ? { authorization: `Bearer ${key}` } : {}), ...extra };
}

function errorMessage(body: unknown, status: number): string {
  if (body && typeof body === 'object') {
    const b = body as { message?: unknown; error?: { message?: unknown } };
    if (typeof b.message === 'string') return b.message;
    if (Array.isArray(b.message)) return b.message.join('; ');
    if (b.error && typeof b.error.message === 'string') return b.error.message;
  }
  return typeof body === 'string' && body ? body.slice(0, 300) : `HTTP ${status}`;
}

export async function api<T = unknown>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const res = await fetch(path, {
    method,
    headers: headers(body !== undefined ? { 'content-type': 'application/json' } : {}),
    body: body !== undefined ? JSON.stringify(body) : undefined,
    signal,
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON */
  }
  if (res.status === 401) authListeners.forEach((fn) => fn(true));
  if (!res.ok) throw new ApiError(res.status, errorMessage(parsed, res.status), parsed);
  return parsed as T;
}

export const get = <T,>(path: string, signal?: AbortSignal) => api<T>('GET', path, undefined, signal);
export const post = <T,>(path: string, body?: unknown) => api<T>('POST', path, body ?? {});

export interface SseMessage {
  event: string;
  data: string;
}

/** Parses a text/event-stream body, calling `onMessage` per event; resolves when the stream ends. */
export async function readSse(res: Response, onMessage: (m: SseMessage) => void, signal?: AbortSignal): Promise<void> {
  if (!res.body) return;
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let event = 'message';
  let data: string[] = [];
  const onAbort = () => reader.cancel().catch(() => undefined);
  signal?.addEventListener('abort', onAbort);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        if (line === '') {
          if (data.length) onMessage({ event, data: data.join('\n') });
          event = 'message';
          data = [];
        } else if (line.startsWith(':')) {
          /* comment */
        } else {
          const i = line.indexOf(':');
          const field = i < 0 ? line : line.slice(0, i);
          const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
          if (field === 'event') event = val;
          else if (field === 'data') data.push(val);
        }
      }
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** Subscribes to GET /events, reconnecting with backoff; returns an unsubscribe function. */
export function subscribeEvents(onEvent: (type: string, data: unknown) => void, onState?: (live: boolean) => void): () => void {
  const ctl = new AbortController();
  let delay = 500;
  const run = async () => {
    while (!ctl.signal.aborted) {
      try {
        const res = await fetch('/events', { headers: headers({ accept: 'text/event-stream' }), signal: ctl.signal });
        if (res.status === 401) authListeners.forEach((fn) => fn(true));
        if (!res.ok) throw new Error(`events: HTTP ${res.status}`);
        onState?.(true);
        delay = 500;
        await readSse(res, (m) => {
          try {
            onEvent(m.event, JSON.parse(m.data));
          } catch {
            /* malformed event */
          }
        }, ctl.signal);
      } catch {
        /* reconnect below */
      }
      onState?.(false);
      if (ctl.signal.aborted) break;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  };
  void run();
  return () => ctl.abort();
}

export { headers as authHeaders };
