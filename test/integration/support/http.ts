export interface Res<T = any> {
  status: number;
  body: T;
  headers: Headers;
  text: string;
}

/**
 * Tiny fetch wrapper: JSON in, JSON (or text) out. A request not answered within `timeoutMs` fails naming itself,
 * rather than leaving the test to run into jest's timeout with nothing to say which call hung.
 */
export function client(base: string, timeoutMs = 60_000) {
  return async function call<T = any>(method: string, path: string, body?: unknown, raw?: string): Promise<Res<T>> {
    let res: Response;
    let text: string;
    try {
      res = await fetch(base + path, {
        method,
        headers: body !== undefined || raw !== undefined ? { 'content-type': 'application/json' } : undefined,
        body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await res.text();
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') throw new Error(`${method} ${path}: no answer within ${timeoutMs} ms`);
      throw err;
    }
    let parsed: any = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed, headers: res.headers, text };
  };
}
