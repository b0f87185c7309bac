export interface Res<T = any> {
  status: number;
  body: T;
  headers: Headers;
  text: string;
}

/** Tiny fetch wrapper: JSON in, JSON (or text) out. */
export function client(base: string) {
  return async function call<T = any>(method: string, path: string, body?: unknown, raw?: string): Promise<Res<T>> {
    const res = await fetch(base + path, {
      method,
      headers: body !== undefined || raw !== undefined ? { 'content-type': 'application/json' } : undefined,
      body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
    const text = await res.text();
    let parsed: any = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed, headers: res.headers, text };
  };
}
