// One SSE connection for the whole app: pages subscribe to job and worker changes through this context.
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { subscribeEvents } from './api';
import type { Job, Worker } from './types';

type JobListener = (job: Job) => void;
type WorkersListener = (workers: Worker[]) => void;

interface Live {
  connected: boolean;
  onJob(fn: JobListener): () => void;
  onWorkers(fn: WorkersListener): () => void;
}

const LiveContext = createContext<Live>({ connected: false, onJob: () => () => undefined, onWorkers: () => () => undefined });

export function LiveProvider({ children, enabled }: { children: ReactNode; enabled: boolean }) {
  const [connected, setConnected] = useState(false);
  const jobs = useRef(new Set<JobListener>());
  const workers = useRef(new Set<WorkersListener>());
  useEffect(() => {
    if (!enabled) return;
    return subscribeEvents((type, data) => {
      const d = data as { job?: Job; workers?: Worker[] };
      if (type === 'job' && d.job) jobs.current.forEach((fn) => fn(d.job!));
      if (type === 'workers' && d.workers) workers.current.forEach((fn) => fn(d.workers!));
    }, setConnected);
  }, [enabled]);
  const onJob = useCallback((fn: JobListener) => {
    jobs.current.add(fn);
    return () => void jobs.current.delete(fn);
  }, []);
  const onWorkers = useCallback((fn: WorkersListener) => {
    workers.current.add(fn);
    return () => void workers.current.delete(fn);
  }, []);
  const value = useMemo<Live>(() => ({ connected, onJob, onWorkers }), [connected, onJob, onWorkers]);
  return <LiveContext.Provider value={value}>{children}</LiveContext.Provider>;
}

export function useLive(): Live {
  return useContext(LiveContext);
}

/** Calls `fn` for every job change while mounted. */
export function useJobEvents(fn: JobListener): void {
  const live = useLive();
  const ref = useRef(fn);
  ref.current = fn;
  const { onJob } = live;
  useEffect(() => onJob((j) => ref.current(j)), [onJob]);
}

export function useWorkerEvents(fn: WorkersListener): void {
  const live = useLive();
  const ref = useRef(fn);
  ref.current = fn;
  const { onWorkers } = live;
  useEffect(() => onWorkers((w) => ref.current(w)), [onWorkers]);
}
