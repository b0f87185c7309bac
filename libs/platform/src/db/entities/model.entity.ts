import { Column, CreateDateColumn, Entity, OneToMany, PrimaryGeneratedColumn } from 'typeorm';
import { bigintToNumber } from './transformers';
import type { ModelVersionEntity } from './model-version.entity';

@Entity('models')
export class ModelEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ type: 'text' })
  name!: string;

  /** Real path (symlinks resolved) of the registered Hugging Face directory; unique. */
  @Column({ name: 'source_path', type: 'text', unique: true })
  sourcePath!: string;

  @Column({ type: 'text' })
  architecture!: string;

  @Column({ name: 'model_type', type: 'text' })
  modelType!: string;

  @Column({ name: 'num_params', type: 'bigint', transformer: bigintToNumber })
  numParams!: number;

  /** null when config.json does not say. */
  @Column({ name: 'context_length', type: 'integer', nullable: true })
  contextLength!: number | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @OneToMany('ModelVersionEntity', (v: ModelVersionEntity) => v.model)
  versions?: ModelVersionEntity[];
}
