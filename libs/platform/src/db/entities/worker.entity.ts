import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import { bigintToNumber } from './transformers';

export type WorkerStatus = 'online' | 'draining' | 'stopped' | 'gone';

export interface LoadedDeployment {
  deploymentId: string;
  versionId: string;
  /** Serving deployments (worker-infer): its name (the OpenAI model id), load state and live counters. */
  name?: string;
  state?: 'loading' | 'ready' | 'failed';
  error?: string;
  /** Requests running on this worker. */
  activeRequests?: number;
  maxBatchSize?: number;
  sessionLen?: number;
  /** Tensor parallelism: the ranks this worker runs the deployment on, one device each ('cuda:0', 'cuda:1'; cpu
   *  ranks are threads: 'cpu'). Absent while loading or after a failure. */
  tp?: number;
  devices?: string[];
  /** The KV cache the worker's engine runs it with ('float', 'int8 online', 'int4 calibrated (<dir>)', ...). */
  kvCache?: string;
  /**
   * The engine's own counters (KV blocks, running/waiting sequences). blocksCached: prefix caching's cached blocks
   * (within blocksFree when no request holds them). specDraftTokens / specAcceptedTokens: deployments with speculative
   * decoding, draft tokens verified and accepted since the engine loaded (acceptance rate = accepted / draft).
   */
  engine?: { running: number; waiting: number; blocksTotal: number; blocksFree: number; blocksCached?: number; specDraftTokens?: number; specAcceptedTokens?: number };
}

@Entity('workers')
export class WorkerEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ type: 'text' })
  name!: string;

  /** 'quant' | 'infer' */
  @Column({ type: 'text' })
  kind!: string;

  @Column({ type: 'text' })
  host!: string;

  @Column({ type: 'integer' })
  pid!: number;

  @Column({ type: 'text', nullable: true })
  gpu!: string | null;

  @Column({ name: 'gpu_memory_bytes', type: 'bigint', nullable: true, transformer: bigintToNumber })
  gpuMemoryBytes!: number | null;

  @Column({ name: 'memory_bytes', type: 'bigint', transformer: bigintToNumber })
  memoryBytes!: number;

  @Column({ type: 'text', array: true, default: () => "'{}'" })
  queues!: string[];

  @Index()
  @Column({ type: 'text', default: 'online' })
  status!: WorkerStatus;

  @Column({ name: 'last_heartbeat_at', type: 'timestamptz' })
  lastHeartbeatAt!: Date;

  @Column({ name: 'loaded_deployments', type: 'jsonb', default: [] })
  loadedDeployments!: LoadedDeployment[];

  @Column({ name: 'active_jobs', type: 'integer', default: 0 })
  activeJobs!: number;

  @CreateDateColumn({ name: 'started_at', type: 'timestamptz' })
  startedAt!: Date;
}
