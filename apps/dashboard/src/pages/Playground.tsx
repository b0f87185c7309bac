// LMDeploy's gradio chat, in the dashboard: OpenAI's chat completions with `stream: true`, read as SSE.
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { ApiError, authHeaders, get, readSse } from '../api';
import { Card, Empty, ErrorNote, Field } from '../components';
import { num } from '../format';

interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
  tool_calls?: ToolCall[];
}

interface Turn extends ChatMessage {
  /** A reasoning model's thinking (deployments with a reasoning parser): shown, not sent back. */
  reasoning?: string;
  stats?: { ttftMs: number; tokens: number; ms: number; finish: string | null };
}

interface Settings {
  model: string;
  system: string;
  temperature: string;
  topP: string;
  /** vLLM / LMDeploy min_p (0: off). */
  minP: string;
  maxTokens: string;
  seed: string;
  ignoreEos: boolean;
  /** OpenAI's response_format: free text, any JSON object, or JSON that fits `schema`; or vLLM's guided_choice (one
   *  of `choices`, one per line) or guided_grammar (`grammar`, EBNF). */
  format: 'text' | 'json_object' | 'json_schema' | 'choice' | 'grammar' | 'regex';
  schema: string;
  choices: string;
  grammar: string;
  regex: string;
  /** OpenAI's tools as JSON (empty: none) and tool_choice. */
  tools: string;
  toolChoice: 'auto' | 'required' | 'none';
  /** OpenAI's parallel_tool_calls: false allows one call per reply. */
  parallelCalls: boolean;
}

/** The request's tools, or an error message for text that is not a JSON array. */
function parseToolsText(text: string): { value?: unknown[]; error?: string } {
  if (!text.trim()) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return { error: `Tools: ${(e as Error).message}` };
  }
  if (!Array.isArray(v) || !v.length) return { error: 'Tools: must be a non-empty JSON array of {type: "function", function: {name, parameters}}' };
  return { value: v };
}

const EXAMPLE_TOOLS = JSON.stringify(
  [{ type: 'function', function: { name: 'get_weather', description: 'The weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }],
  null,
  2,
);

const EXAMPLE_SCHEMA = JSON.stringify(
  { type: 'object', properties: { answer: { type: 'string' }, confidence: { enum: ['low', 'medium', 'high'] } }, required: ['answer', 'confidence'] },
  null,
  2,
);

const EXAMPLE_GRAMMAR = 'root ::= verdict ". " reason\nverdict ::= "yes" | "no"\nreason ::= [a-z ]+ "."';

/** The request's guided decoding fields (response_format, or vLLM's guided_choice / guided_grammar), or an error
 *  message for a schema that is not a JSON object or an empty list or grammar. */
function responseFormat(s: Settings): { value?: Record<string, unknown>; error?: string } {
  if (s.format === 'text') return {};
  if (s.format === 'json_object') return { value: { response_format: { type: 'json_object' } } };
  if (s.format === 'choice') {
    const choices = s.choices.split('\n').map((c) => c.trim()).filter(Boolean);
    return choices.length ? { value: { guided_choice: choices } } : { error: 'Choices: write at least one, one per line' };
  }
  if (s.format === 'grammar') return s.grammar.trim() ? { value: { guided_grammar: s.grammar } } : { error: 'Grammar: write an EBNF grammar whose start rule is root' };
  if (s.format === 'regex') return s.regex ? { value: { guided_regex: s.regex } } : { error: 'Regular expression: write one' };
  let schema: unknown;
  try {
    schema = JSON.parse(s.schema);
  } catch (e) {
    return { error: `JSON schema: ${(e as Error).message}` };
  }
  if (!schema || typeof schema !== 'object' || Array.isArray(schema)) return { error: 'JSON schema: must be a JSON object' };
  return { value: { response_format: { type: 'json_schema', json_schema: { name: 'playground', schema, strict: true } } } };
}

export function PlaygroundPage() {
  const [models, setModels] = useState<string[]>();
  const [modelsError, setModelsError] = useState<string>();
  const [s, setS] = useState<Settings>({
    model: '', system: '', temperature: '0.7', topP: '0.95', minP: '0', maxTokens: '128', seed: '', ignoreEos: false, format: 'text', schema: EXAMPLE_SCHEMA, choices: 'yes\nno', grammar: EXAMPLE_GRAMMAR, regex: '(yes|no), because [a-z ]+\\.',
    tools: '', toolChoice: 'auto', parallelCalls: true,
  });
  const [turns, setTurns] = useState<Turn[]>([]);
  const [input, setInput] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const ctl = useRef<AbortController | null>(null);
  const chatBox = useRef<HTMLDivElement>(null);
  const set = <K extends keyof Settings>(k: K, v: Settings[K]) => setS((o) => ({ ...o, [k]: v }));

  useEffect(() => {
    get<{ data: Array<{ id: string }> }>('/v1/models')
      .then((r) => {
        const ids = r.data.map((m) => m.id);
        setModels(ids);
        // #/playground?model=<name> (the Deployments card links here) preselects a deployment
        const wanted = new URLSearchParams(window.location.hash.split('?')[1] ?? '').get('model');
        setS((o) => ({ ...o, model: o.model || (wanted && ids.includes(wanted) ? wanted : ids[0]) || '' }));
      })
      .catch((e: Error) => setModelsError(e instanceof ApiError && e.status === 404 ? 'This API does not serve the OpenAI endpoints (/v1) yet.' : e.message));
  }, []);
  useEffect(() => {
    if (chatBox.current) chatBox.current.scrollTop = chatBox.current.scrollHeight;
  }, [turns]);

  const send = async (e: FormEvent) => {
    e.preventDefault();
    const text = input.trim();
    if (!text || busy) return;
    const format = responseFormat(s);
    const tools = parseToolsText(s.tools);
    if (format.error || tools.error) {
      setError(format.error ?? tools.error);
      return;
    }
    setError(undefined);
    const history: Turn[] = [...turns, { role: 'user', content: text }];
    setTurns([...history, { role: 'assistant', content: '' }]);
    setInput('');
    setBusy(true);
    const messages: ChatMessage[] = [...(s.system.trim() ? [{ role: 'system' as const, content: s.system.trim() }] : []), ...history.map(({ role, content, tool_calls }) => ({ role, content, ...(tool_calls?.length ? { tool_calls } : {}) }))];
    const body: Record<string, unknown> = {
      model: s.model,
      messages,
      stream: true,
      temperature: Number(s.temperature),
      top_p: Number(s.topP),
      ...(Number(s.minP) > 0 ? { min_p: Number(s.minP) } : {}),
      max_tokens: Number(s.maxTokens),
      ...(s.seed.trim() ? { seed: Number(s.seed) } : {}),
      ...(s.ignoreEos ? { ignore_eos: true } : {}),
      ...(format.value ?? {}),
      ...(tools.value ? { tools: tools.value, tool_choice: s.toolChoice, ...(s.parallelCalls ? {} : { parallel_tool_calls: false }) } : {}),
    };
    const started = performance.now();
    let first = 0;
    let tokens = 0;
    let finish: string | null = null;
    ctl.current = new AbortController();
    const calls: ToolCall[] = [];
    let reasoning = '';
    const update = (content: string, done = false) =>
      setTurns((t) => {
        const copy = [...t];
        copy[copy.length - 1] = {
          role: 'assistant',
          content,
          ...(reasoning ? { reasoning } : {}),
          ...(calls.length ? { tool_calls: [...calls] } : {}),
          stats: done || tokens ? { ttftMs: first ? first - started : 0, tokens, ms: performance.now() - started, finish } : undefined,
        };
        return copy;
      });
    let answer = '';
    try {
      const res = await fetch('/v1/chat/completions', {
        method: 'POST',
        headers: authHeaders({ 'content-type': 'application/json', accept: 'text/event-stream' }),
        body: JSON.stringify(body),
        signal: ctl.current.signal,
      });
      if (!res.ok) {
        const t = await res.text();
        let msg = t;
        try {
          msg = JSON.parse(t).error?.message ?? t;
        } catch {
          /* plain text */
        }
        throw new Error(`HTTP ${res.status}: ${msg}`);
      }
      await readSse(res, (m) => {
        if (m.data === '[DONE]') return;
        const chunk = JSON.parse(m.data) as {
          choices?: Array<{ delta?: { content?: string; reasoning_content?: string; tool_calls?: Array<ToolCall & { index: number }> }; finish_reason?: string | null }>;
          error?: { message?: string };
        };
        if (chunk.error) throw new Error(chunk.error.message ?? 'stream error');
        const c = chunk.choices?.[0];
        for (const tc of c?.delta?.tool_calls ?? []) {
          calls[tc.index] = { id: tc.id, type: 'function', function: { name: tc.function.name, arguments: tc.function.arguments } };
          update(answer);
        }
        if (c?.delta?.reasoning_content) {
          if (!first) first = performance.now();
          tokens++;
          reasoning += c.delta.reasoning_content;
          update(answer);
        }
        if (c?.delta?.content) {
          if (!first) first = performance.now();
          tokens++;
          answer += c.delta.content;
          update(answer);
        }
        if (c?.finish_reason) finish = c.finish_reason;
      }, ctl.current.signal);
      update(answer, true);
    } catch (err) {
      if ((err as Error).name !== 'AbortError') setError((err as Error).message);
      update(answer, true);
    } finally {
      setBusy(false);
      ctl.current = null;
    }
  };

  return (
    <>
      <h1>Playground</h1>
      <div className="split playground">
        <Card title="Chat" id="chat">
          <ErrorNote error={modelsError} />
          <div className="chat" role="log" aria-live="polite" aria-label="Conversation" ref={chatBox} tabIndex={0}>
            {turns.length === 0 && <Empty>Send a message to chat with the selected deployment; the answer streams in token by token.</Empty>}
            {turns.map((t, i) => (
              <div key={i} className={`msg msg-${t.role}`} data-role={t.role}>
                <span className="msg-role">{t.role === 'user' ? 'You' : 'Assistant'}</span>
                {t.reasoning && (
                  <details className="msg-reasoning" open={busy && i === turns.length - 1 && !t.content} data-testid="reasoning">
                    <summary className="muted">Thinking</summary>
                    <div className="msg-text muted">{t.reasoning}</div>
                  </details>
                )}
                <div className="msg-text">{t.content || (busy && i === turns.length - 1 && !t.tool_calls && !t.reasoning ? '…' : '')}</div>
                {t.tool_calls?.map((c) => (
                  <div key={c.id} className="msg-tool mono" data-testid="tool-call">
                    {c.function.name}({c.function.arguments})
                  </div>
                ))}
                {t.stats && (
                  <span className="msg-stats muted">
                    {t.stats.tokens} chunks · first token {num(t.stats.ttftMs, 0)} ms · {num(t.stats.tokens / Math.max(t.stats.ms / 1000, 1e-3), 1)} chunks/s
                    {t.stats.finish ? ` · ${t.stats.finish}` : ''}
                  </span>
                )}
              </div>
            ))}
          </div>
          <ErrorNote error={error} />
          <form className="chat-input" onSubmit={send} aria-label="Send a message">
            <label className="sr-only" htmlFor="chat-message">
              Message
            </label>
            <textarea
              id="chat-message"
              rows={2}
              value={input}
              onChange={(e) => setInput(e.target.value)}
              onKeyDown={(e) => {
                if (e.key === 'Enter' && !e.shiftKey) {
                  e.preventDefault();
                  (e.currentTarget.form as HTMLFormElement).requestSubmit();
                }
              }}
              placeholder="Ask something… (Enter sends, Shift+Enter for a new line)"
              disabled={!s.model}
            />
            <div className="chat-buttons">
              <button type="submit" className="primary" disabled={busy || !s.model || !input.trim()}>
                Send
              </button>
              <button type="button" onClick={() => ctl.current?.abort()} disabled={!busy} aria-label="Stop generating">
                Stop
              </button>
              <button type="button" onClick={() => setTurns([])} disabled={busy || !turns.length} aria-label="Clear conversation">
                Clear
              </button>
            </div>
          </form>
        </Card>
        <Card title="Settings" id="settings">
          <form className="form-grid one" onSubmit={(e) => e.preventDefault()} aria-label="Sampling settings">
            <Field label="Deployment (model)">
              <select value={s.model} onChange={(e) => set('model', e.target.value)} aria-label="Deployment">
                {(models ?? []).map((m) => (
                  <option key={m}>{m}</option>
                ))}
                {models && !models.length && <option value="">no deployment</option>}
              </select>
            </Field>
            <Field label="System prompt">
              <textarea rows={3} value={s.system} onChange={(e) => set('system', e.target.value)} aria-label="System prompt" />
            </Field>
            <Field label={`Temperature (${s.temperature})`}>
              <input type="range" min={0} max={2} step={0.05} value={s.temperature} onChange={(e) => set('temperature', e.target.value)} aria-label="Temperature" />
            </Field>
            <Field label={`Top p (${s.topP})`}>
              <input type="range" min={0} max={1} step={0.01} value={s.topP} onChange={(e) => set('topP', e.target.value)} aria-label="Top p" />
            </Field>
            <Field label={`Min p (${Number(s.minP) > 0 ? s.minP : 'off'})`}>
              <input type="range" min={0} max={1} step={0.01} value={s.minP} onChange={(e) => set('minP', e.target.value)} aria-label="Min p" />
            </Field>
            <Field label="Max new tokens">
              <input type="number" min={1} max={32768} value={s.maxTokens} onChange={(e) => set('maxTokens', e.target.value)} aria-label="Max new tokens" />
            </Field>
            <Field label="Seed (optional)">
              <input type="number" min={0} value={s.seed} onChange={(e) => set('seed', e.target.value)} aria-label="Seed" />
            </Field>
            <label className="checks">
              <input type="checkbox" checked={s.ignoreEos} onChange={(e) => set('ignoreEos', e.target.checked)} /> ignore EOS (always generate the full length)
            </label>
            <Field label="Response format">
              <select value={s.format} onChange={(e) => set('format', e.target.value as Settings['format'])} aria-label="Response format">
                <option value="text">text</option>
                <option value="json_object">JSON object</option>
                <option value="json_schema">JSON schema</option>
                <option value="choice">one of a list (guided_choice)</option>
                <option value="grammar">EBNF grammar (guided_grammar)</option>
                <option value="regex">regular expression (guided_regex)</option>
              </select>
            </Field>
            {s.format === 'regex' && (
              <Field label="Regular expression (the whole answer matches it)">
                <input className="mono" value={s.regex} onChange={(e) => set('regex', e.target.value)} aria-label="Regular expression" spellCheck={false} />
              </Field>
            )}
            {s.format === 'choice' && (
              <Field label="Choices (one per line; the answer is exactly one)">
                <textarea rows={4} value={s.choices} onChange={(e) => set('choices', e.target.value)} aria-label="Choices" spellCheck={false} />
              </Field>
            )}
            {s.format === 'grammar' && (
              <Field label="Grammar (EBNF, xgrammar's dialect; start rule root)">
                <textarea rows={6} className="mono" value={s.grammar} onChange={(e) => set('grammar', e.target.value)} aria-label="Grammar" spellCheck={false} />
              </Field>
            )}
            {s.format === 'json_schema' && (
              <Field label="JSON schema (the answer will fit it)">
                <textarea rows={8} className="mono" value={s.schema} onChange={(e) => set('schema', e.target.value)} aria-label="JSON schema" spellCheck={false} />
              </Field>
            )}
            <Field label="Tools (OpenAI function tools as JSON; empty: none)">
              <textarea rows={4} className="mono" value={s.tools} placeholder={EXAMPLE_TOOLS} onChange={(e) => set('tools', e.target.value)} aria-label="Tools" spellCheck={false} />
            </Field>
            <Field label="Tool choice">
              <select value={s.toolChoice} onChange={(e) => set('toolChoice', e.target.value as Settings['toolChoice'])} aria-label="Tool choice">
                <option value="auto">auto (the model decides)</option>
                <option value="required">required (always a call)</option>
                <option value="none">none</option>
              </select>
            </Field>
            <label className="checks">
              <input type="checkbox" checked={s.parallelCalls} onChange={(e) => set('parallelCalls', e.target.checked)} /> several tool calls in one reply
            </label>
          </form>
        </Card>
      </div>
    </>
  );
}
