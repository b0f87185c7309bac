import { useEffect, useState, type FormEvent } from 'react';
import { getApiKey, onAuthRequired, setApiKey } from './api';
import { Field } from './components';
import { LiveProvider, useLive } from './live';
import { JobDetailPage } from './pages/JobDetail';
import { JobsPage } from './pages/Jobs';
import { ModelDetailPage } from './pages/ModelDetail';
import { ModelsPage } from './pages/Models';
import { PlaygroundPage } from './pages/Playground';
import { WorkersPage } from './pages/Workers';
import { Link, match, useRoute } from './router';

const NAV = [
  { to: '/models', label: 'Models' },
  { to: '/jobs', label: 'Jobs' },
  { to: '/workers', label: 'Workers' },
  { to: '/playground', label: 'Playground' },
];

function Page({ route }: { route: string }) {
  let m: Record<string, string> | null;
  if (route === '/' || route === '/models') return <ModelsPage />;
  if ((m = match('/models/:id', route))) return <ModelDetailPage id={m.id} />;
  if (route === '/jobs' || route.startsWith('/jobs?')) return <JobsPage />;
  if ((m = match('/jobs/:id', route))) return <JobDetailPage id={m.id} />;
  if (route === '/workers') return <WorkersPage />;
  if (route === '/playground' || route.startsWith('/playground?')) return <PlaygroundPage />;
  return (
    <section className="card">
      <h2>Not found</h2>
      <p>
        Nothing at <code>{route}</code>. <Link to="/models">Back to models</Link>
      </p>
    </section>
  );
}

function LiveIndicator() {
  const { connected } = useLive();
  return (
    <span className={`live ${connected ? 'live-on' : 'live-off'}`} role="status" aria-live="polite" title={connected ? 'Live updates connected' : 'Live updates reconnecting'}>
      {connected ? 'live' : 'offline'}
    </span>
  );
}

function KeyPrompt({ onDone }: { onDone: () => void }) {
  const [key, setKey] = useState('');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!key.trim()) return;
    setApiKey(key.trim());
    onDone();
  };
  return (
    <div className="modal-backdrop">
      <form className="modal card" onSubmit={submit} aria-labelledby="key-title">
        <h2 id="key-title">API key required</h2>
        <p>This server has API keys turned on. Enter one; it is kept in this browser and sent as a Bearer token.</p>
        <Field label="API key">
          <input type="password" autoComplete="off" value={key} onChange={(e) => setKey(e.target.value)} aria-label="API key" autoFocus />
        </Field>
        <button type="submit" className="primary">
          Use key
        </button>
      </form>
    </div>
  );
}

export function App() {
  const route = useRoute();
  const [needKey, setNeedKey] = useState(false);
  const [navOpen, setNavOpen] = useState(false);
  const [epoch, setEpoch] = useState(0);
  useEffect(() => {
    const off = onAuthRequired((needed) => setNeedKey(needed));
    return () => void off();
  }, []);
  useEffect(() => {
    setNavOpen(false);
  }, [route]);
  const section = '/' + (route.split('/')[1] || 'models').split('?')[0];
  return (
    <LiveProvider enabled={!needKey} key={epoch}>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to="/models" className="brand" aria-label="LMFleet home">
          <span className="brand-mark" aria-hidden="true">
            LM
          </span>
          LMFleet
        </Link>
        <button type="button" className="nav-toggle" aria-expanded={navOpen} aria-controls="nav" aria-label="Menu" onClick={() => setNavOpen((o) => !o)}>
          ☰
        </button>
        <nav id="nav" aria-label="Main" className={navOpen ? 'open' : ''}>
          {NAV.map((n) => (
            <Link key={n.to} to={n.to} aria-current={section === n.to ? 'page' : undefined}>
              {n.label}
            </Link>
          ))}
          <a href="/admin/queues" target="_blank" rel="noreferrer">
            Queues ↗
          </a>
          <a href="/docs" target="_blank" rel="noreferrer">
            API docs ↗
          </a>
        </nav>
        <div className="topbar-end">
          <LiveIndicator />
          {getApiKey() && (
            <button type="button" className="link" onClick={() => { setApiKey(null); setEpoch((e) => e + 1); }} aria-label="Forget API key">
              sign out
            </button>
          )}
        </div>
      </header>
      <main id="main" key={`${epoch}`}>
        <Page route={route} />
      </main>
      {needKey && <KeyPrompt onDone={() => { setNeedKey(false); setEpoch((e) => e + 1); }} />}
    </LiveProvider>
  );
}
