import { useCallback, useEffect, useRef, useState } from 'react';
import { get } from './api';

/** GET a resource; `reload()` refetches; `every` polls (ms). */
export function useResource<T>(path: string | null, every?: number): { data: T | undefined; error: Error | undefined; loading: boolean; reload: () => void; setData: (fn: (d: T | undefined) => T | undefined) => void } {
  const [data, setDataState] = useState<T>();
  const [error, setError] = useState<Error>();
  const [loading, setLoading] = useState(false);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  useEffect(() => {
    if (!path) return;
    const ctl = new AbortController();
    setLoading(true);
    get<T>(path, ctl.signal)
      .then((d) => {
        setDataState(d);
        setError(undefined);
      })
      .catch((e: Error) => {
        if (!ctl.signal.aborted) setError(e);
      })
      .finally(() => !ctl.signal.aborted && setLoading(false));
    return () => ctl.abort();
  }, [path, tick]);
  useEffect(() => {
    if (!every || !path) return;
    const t = setInterval(reload, every);
    return () => clearInterval(t);
  }, [every, path, reload]);
  const setData = useCallback((fn: (d: T | undefined) => T | undefined) => setDataState((d) => fn(d)), []);
  return { data, error, loading, reload, setData };
}

/** Re-renders every `ms` (running durations, heartbeat ages). */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

export function useLatest<T>(value: T) {
  const ref = useRef(value);
  ref.current = value;
  return ref;
}
