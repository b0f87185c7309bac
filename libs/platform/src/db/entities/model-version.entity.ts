import type { JsonObject } from './transformers';
import { Column, CreateDateColumn, Entity, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { bigintToNumber } from './transformers';
import type { ModelEntity } from './model.entity';
import type { JobEntity } from './job.entity';

export type VersionFormat = 'hf' | 'autoawq' | 'workspace';

@Entity('model_versions')
export class ModelVersionEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'model_id', type: 'uuid' })
  modelId!: string;

  @ManyToOne('ModelEntity', (m: ModelEntity) => m.versions, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'model_id' })
  model?: ModelEntity;

  /** The version this one was derived from (null for the registered base). */
  @Column({ name: 'parent_version_id', type: 'uuid', nullable: true })
  parentVersionId!: string | null;

  @ManyToOne('ModelVersionEntity', { onDelete: 'SET NULL' })
  @JoinColumn({ name: 'parent_version_id' })
  parentVersion?: ModelVersionEntity | null;

  /** The job that produced it; unique so a re-run job upserts instead of duplicating. */
  @Column({ name: 'created_by_job_id', type: 'uuid', nullable: true, unique: true })
  createdByJobId!: string | null;

  @ManyToOne('JobEntity', { onDelete: 'SET NULL' })
  @JoinColumn({ name: 'created_by_job_id' })
  createdByJob?: JobEntity | null;

  @Column({ type: 'text' })
  format!: VersionFormat;

  @Column({ type: 'text' })
  dtype!: string;

  @Column({ type: 'jsonb', nullable: true })
  quantization!: JsonObject | null;

  @Column({ type: 'text' })
  path!: string;

  @Column({ name: 'size_bytes', type: 'bigint', transformer: bigintToNumber })
  sizeBytes!: number;

  /** Latest value per metric name (the metrics table keeps every measurement). */
  @Column({ type: 'jsonb', default: {} })
  metrics!: Record<string, number>;

  /** What inspectModel reported. */
  @Column({ type: 'jsonb', default: {} })
  info!: JsonObject;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
