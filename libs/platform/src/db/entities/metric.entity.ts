import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import type { JobEntity } from './job.entity';
import type { ModelVersionEntity } from './model-version.entity';

/** A measurement, linked to the job that took it and/or the version it describes. */
@Entity('metrics')
@Index('uq_metrics_job_name', ['jobId', 'name'], { unique: true, where: 'job_id IS NOT NULL' })
export class MetricEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ type: 'text' })
  name!: string;

  @Column({ type: 'double precision' })
  value!: number;

  @Column({ type: 'text', nullable: true })
  unit!: string | null;

  @Column({ name: 'job_id', type: 'uuid', nullable: true })
  jobId!: string | null;

  @ManyToOne('JobEntity', { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'job_id' })
  job?: JobEntity | null;

  @Index()
  @Column({ name: 'version_id', type: 'uuid', nullable: true })
  versionId!: string | null;

  @ManyToOne('ModelVersionEntity', { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'version_id' })
  version?: ModelVersionEntity | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
