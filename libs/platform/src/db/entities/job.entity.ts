import type { JsonObject } from './transformers';
import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';
import type { JobName } from '../../queue/jobs';

export type JobStatus = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';
export const JOB_STATUSES: readonly JobStatus[] = ['queued', 'running', 'completed', 'failed', 'cancelled'];
export const FINISHED_STATUSES: readonly JobStatus[] = ['completed', 'failed', 'cancelled'];

@Entity('jobs')
@Index(['status', 'createdAt'])
export class JobEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ type: 'text' })
  type!: JobName;

  @Column({ type: 'jsonb', default: {} })
  params!: JsonObject;

  @Column({ type: 'text', default: 'queued' })
  status!: JobStatus;

  /** 0..1 */
  @Column({ type: 'double precision', default: 0 })
  progress!: number;

  /** Times a worker started it (BullMQ attemptsStarted, stalls included). */
  @Column({ type: 'integer', default: 0 })
  attempts!: number;

  @Column({ name: 'queue_name', type: 'text' })
  queueName!: string;

  @Column({ name: 'bull_job_id', type: 'text', unique: true })
  bullJobId!: string;

  /** Input version (null for pipeline steps that read their input from the previous step). */
  @Index()
  @Column({ name: 'version_id', type: 'uuid', nullable: true })
  versionId!: string | null;

  @Index()
  @Column({ name: 'worker_id', type: 'uuid', nullable: true })
  workerId!: string | null;

  /** In a flow: the job that runs after this one (BullMQ parent). */
  @Index()
  @Column({ name: 'parent_job_id', type: 'uuid', nullable: true })
  parentJobId!: string | null;

  /** Pipeline id shared by every step of a flow. */
  @Index()
  @Column({ name: 'flow_id', type: 'uuid', nullable: true })
  flowId!: string | null;

  @Column({ type: 'text', nullable: true })
  error!: string | null;

  @Column({ type: 'jsonb', nullable: true })
  result!: JsonObject | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;

  @Column({ name: 'started_at', type: 'timestamptz', nullable: true })
  startedAt!: Date | null;

  @Column({ name: 'finished_at', type: 'timestamptz', nullable: true })
  finishedAt!: Date | null;
}
