import type { JsonObject } from './transformers';
import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn, Unique } from 'typeorm';
import type { JobEntity } from './job.entity';
import type { ModelVersionEntity } from './model-version.entity';
import { bigintToNumber } from './transformers';

export type ArtifactKind = 'calibration' | 'autoawq' | 'workspace' | 'eval_report' | 'generations';

/** One file in the artifact store. (job_id, name) is unique: a re-run job overwrites, never duplicates. */
@Entity('artifacts')
@Unique('uq_artifacts_job_name', ['jobId', 'name'])
export class ArtifactEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Index()
  @Column({ name: 'job_id', type: 'uuid' })
  jobId!: string;

  @ManyToOne('JobEntity', { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'job_id' })
  job?: JobEntity;

  @Index()
  @Column({ name: 'version_id', type: 'uuid', nullable: true })
  versionId!: string | null;

  @ManyToOne('ModelVersionEntity', { onDelete: 'SET NULL' })
  @JoinColumn({ name: 'version_id' })
  version?: ModelVersionEntity | null;

  @Column({ type: 'text' })
  kind!: ArtifactKind;

  /** File name as offered for download. */
  @Column({ type: 'text' })
  name!: string;

  /** Path relative to ARTIFACT_DIR. */
  @Column({ type: 'text' })
  path!: string;

  @Column({ type: 'bigint', transformer: bigintToNumber })
  bytes!: number;

  @Column({ type: 'char', length: 64 })
  sha256!: string;

  @Column({ type: 'jsonb', default: {} })
  metadata!: JsonObject;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
