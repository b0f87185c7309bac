import { Inject, Injectable, Logger } from '@nestjs/common';
import { execFile } from 'node:child_process';
import * as os from 'node:os';
import { promisify } from 'node:util';
import { APP_CONFIG, type AppConfig } from '../config';
import type { LoadedDeployment, WorkerStatus } from '../db/entities/worker.entity';
import { WorkerRepository } from '../repositories/worker.repository';

async function detectGpu(visible: string | undefined): Promise<{ gpu: string | null; gpuMemoryBytes: number | null }> {
  try {
    const { stdout } = await promisify(execFile)('nvidia-smi', ['--query-gpu=name,memory.total', '--format=csv,noheader,nounits'], { timeout: 3000 });
    const lines = stdout.trim().split('\n').filter(Boolean);
    const idx = visible && /^\d+$/.test(visible.split(',')[0]) ? Number(visible.split(',')[0]) : 0;
    const [name, mib] = (lines[idx] ?? lines[0] ?? '').split(',').map((s) => s.trim());
    return name ? { gpu: name, gpuMemoryBytes: Number(mib) * 1024 * 1024 || null } : { gpu: null, gpuMemoryBytes: null };
  } catch {
    return { gpu: null, gpuMemoryBytes: null };
  }
}

/** This process's row in `workers`, kept alive by heartbeats; stale rows of others are marked gone. */
@Injectable()
export class WorkerRegistry {
  private readonly logger = new Logger(WorkerRegistry.name);
  private timer?: NodeJS.Timeout;
  private id?: string;
  private status: WorkerStatus = 'online';

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly workers: WorkerRepository,
  ) {}

  get workerId(): string {
    if (!this.id) throw new Error('worker is not registered yet');
    return this.id;
  }

  async register(kind: string, queues: string[], state: () => { activeJobs: number; loadedDeployments: LoadedDeployment[]; queues?: string[] }): Promise<string> {
    const host = os.hostname();
    const gpu = await detectGpu(this.config.worker.cudaVisibleDevices);
    const row = await this.workers.register({
      name: this.config.worker.name ?? `${kind}-${host}-${process.pid}`,
      kind,
      host,
      pid: process.pid,
      ...gpu,
      memoryBytes: os.totalmem(),
      queues,
    });
    this.id = row.id;
    const beat = async () => {
      try {
        await this.workers.heartbeat(row.id, { ...state(), status: this.status });
        const gone = await this.workers.markGone(new Date(Date.now() - this.config.worker.heartbeatTimeoutMs));
        if (gone) this.logger.warn(`marked ${gone} worker(s) gone (no heartbeat for ${this.config.worker.heartbeatTimeoutMs} ms)`);
      } catch (err) {
        this.logger.warn(`heartbeat failed: ${(err as Error).message}`);
      }
    };
    this.timer = setInterval(() => void beat(), this.config.worker.heartbeatIntervalMs);
    this.logger.log(`registered worker ${row.name} (${row.id}) on ${queues.join(', ')}`);
    return row.id;
  }

  async setStatus(status: WorkerStatus): Promise<void> {
    this.status = status;
    if (status === 'stopped' && this.timer) clearInterval(this.timer);
    if (this.id) await this.workers.setStatus(this.id, status).catch(() => undefined);
  }
}
