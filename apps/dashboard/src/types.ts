// The API's JSON as the dashboard reads it (dates arrive as ISO strings).

export type JobStatus = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';
export type JobType = 'calibrate' | 'auto_awq' | 'convert' | 'eval' | 'infer';

export interface Job {
  id: string;
  type: JobType;
  params: Record<string, unknown>;
  status: JobStatus;
  progress: number;
  attempts: number;
  queueName: string;
  versionId: string | null;
  workerId: string | null;
  parentJobId: string | null;
  flowId: string | null;
  error: string | null;
  result: Record<string, unknown> | null;
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export interface Model {
  id: string;
  name: string;
  sourcePath: string;
  architecture: string;
  modelType: string;
  numParams: number;
  contextLength: number | null;
  createdAt: string;
}

export interface MetricValue {
  value: number;
  unit: string | null;
  jobId: string | null;
  at: string;
}

export interface Version {
  id: string;
  modelId: string;
  parentVersionId: string | null;
  createdByJobId: string | null;
  format: 'hf' | 'autoawq' | 'workspace';
  dtype: string;
  quantization: Record<string, unknown> | null;
  path: string;
  sizeBytes: number;
  metrics: Record<string, number>;
  createdAt: string;
  measurements: Record<string, MetricValue>;
  derived: { tokensPerSecond: number | null; serving: { requests: number; ttftMsP50: number | null; decodeTokensPerSecondP50: number | null } | null };
}

export interface JobSummary {
  id: string;
  type: JobType;
  status: JobStatus;
  progress: number;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
}

export interface TreeNode {
  kind: 'version' | 'calibration';
  id: string;
  parentId: string | null;
  depth: number;
  jobId: string | null;
  version?: Version;
  calibration?: { samples: number | null; seqlen: number | null; tokens: number | null; dataset: string | null };
  job?: JobSummary | null;
}

export interface ModelTree {
  model: Model;
  nodes: TreeNode[];
}

export interface LogLine {
  at: string;
  level: 'info' | 'warn' | 'error';
  message: string;
  source: string;
}

export interface Artifact {
  id: string;
  jobId: string;
  versionId: string | null;
  kind: string;
  name: string;
  bytes: number;
  sha256: string;
  createdAt: string;
}

export interface JobDetail {
  job: Job;
  worker: { id: string; name: string; host: string } | null;
  log: LogLine[];
  artifacts: Artifact[];
  flow: JobSummary[];
  timings: { queuedMs: number | null; runMs: number | null; totalMs: number | null };
}

export interface Worker {
  id: string;
  name: string;
  kind: string;
  host: string;
  pid: number;
  gpu: string | null;
  gpuMemoryBytes: number | null;
  memoryBytes: number;
  queues: string[];
  status: 'online' | 'draining' | 'stopped' | 'gone';
  lastHeartbeatAt: string;
  loadedDeployments: LoadedDeployment[];
  activeJobs: number;
  startedAt: string;
}

export interface LinearSummary {
  absmax: number;
  absmean: number;
  min: number;
  max: number;
  channels: number;
  topChannels: Array<{ channel: number; absmax: number }>;
}

export interface CalibStats {
  jobId: string;
  linearNames: string[];
  metadata: Record<string, string>;
  layers: Array<{
    layer: number;
    linears: Record<string, LinearSummary>;
    k?: { min: number[]; max: number[]; absmax: number[] };
    v?: { min: number[]; max: number[]; absmax: number[] };
  }>;
}

export interface LoadedDeployment {
  deploymentId: string;
  versionId: string;
  name?: string;
  state?: 'loading' | 'ready' | 'failed';
  error?: string;
  activeRequests?: number;
  maxBatchSize?: number;
  sessionLen?: number;
  /** Tensor parallelism: the device of each rank this worker runs the deployment on. */
  tp?: number;
  devices?: string[];
  /** specDraftTokens / specAcceptedTokens: deployments with speculative decoding, since the engine loaded. */
  engine?: { running: number; waiting: number; blocksTotal: number; blocksFree: number; blocksCached?: number; specDraftTokens?: number; specAcceptedTokens?: number };
}

export interface Deployment {
  id: string;
  name: string;
  versionId: string;
  kvPolicy: string;
  cacheMaxEntryCount: number | null;
  maxBatchSize: number;
  sessionLen: number | null;
  maxPending: number;
  /** LMDeploy's --tp (absent from an API older than tensor parallelism). */
  tp?: number;
  /** LMDeploy's --enable-prefix-caching (absent from an API older than prefix caching). */
  enablePrefixCaching?: boolean;
  /** vLLM's / LMDeploy's --reasoning-parser (absent from an API older than it). */
  reasoningParser?: string | null;
  /** Speculative decoding with n-gram drafts (absent from an API older than it; null: off). */
  speculative?: { method: string; numDraftTokens: number; promptLookupMax?: number; promptLookupMin?: number } | null;
  createdAt: string;
  workers: Array<{ workerId: string; workerName: string } & LoadedDeployment>;
}

export interface DeploymentStats {
  deploymentName: string;
  requests: number;
  errors: number;
  ttftMsP50: number | null;
  ttftMsP95: number | null;
  totalMsP50: number | null;
  decodeTokensPerSecondP50: number | null;
  promptTokens: number;
  /** Of promptTokens, taken from the prefix cache (absent from an API older than prefix caching). */
  cachedPromptTokens?: number;
  completionTokens: number;
  lastAt: string | null;
}
