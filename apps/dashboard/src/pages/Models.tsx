import { useState, type FormEvent } from 'react';
import { post } from '../api';
import { Card, Empty, ErrorNote, Field } from '../components';
import { ago, num } from '../format';
import { useResource } from '../hooks';
import { Link, navigate } from '../router';
import type { Model, Page, Version } from '../types';

export function RegisterForm() {
  const [path, setPath] = useState('');
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const r = await post<{ model: Model; version: Version }>('/models', { path: path.trim(), ...(name.trim() ? { name: name.trim() } : {}) });
      navigate(`/models/${r.model.id}`);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="form-row" onSubmit={submit} aria-label="Register a model">
      <Field label="Model directory" hint="A Hugging Face directory under MODEL_ROOTS">
        <input name="path" required value={path} onChange={(e) => setPath(e.target.value)} placeholder="/models/Qwen2.5-0.5B-Instruct" aria-label="Model directory" />
      </Field>
      <Field label="Name (optional)">
        <input name="name" value={name} onChange={(e) => setName(e.target.value)} placeholder="defaults to the directory name" aria-label="Model name" />
      </Field>
      <button type="submit" className="primary" disabled={busy || !path.trim()}>
        {busy ? 'Registering…' : 'Register model'}
      </button>
      <ErrorNote error={error} />
    </form>
  );
}

export function ModelsPage() {
  const models = useResource<Page<Model>>('/models?limit=100');
  return (
    <>
      <h1>Models</h1>
      <Card title="Register a model" id="register">
        <RegisterForm />
      </Card>
      <Card title={`Registered models${models.data ? ` (${models.data.total})` : ''}`} id="models">
        <ErrorNote error={models.error} />
        {models.data && models.data.items.length === 0 && <Empty>No model yet: register a Hugging Face directory above.</Empty>}
        {models.data && models.data.items.length > 0 && (
          <div className="table-wrap">
            <table aria-label="Models">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Architecture</th>
                  <th scope="col">Parameters</th>
                  <th scope="col">Context</th>
                  <th scope="col">Source</th>
                  <th scope="col">Registered</th>
                </tr>
              </thead>
              <tbody>
                {models.data.items.map((m) => (
                  <tr key={m.id}>
                    <td>
                      <Link to={`/models/${m.id}`}>{m.name}</Link>
                    </td>
                    <td>{m.architecture}</td>
                    <td>{num(m.numParams / 1e6, 1)} M</td>
                    <td>{m.contextLength ?? '—'}</td>
                    <td className="mono truncate" title={m.sourcePath}>
                      {m.sourcePath}
                    </td>
                    <td>{ago(m.createdAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Card>
    </>
  );
}
