import { Column, CreateDateColumn, Entity, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import type { ServingSpeculative } from '../../engine/engine.adapter';
import type { ReasoningParser } from '../../serving/reasoning';
import type { ModelVersionEntity } from './model-version.entity';

/** KV-cache storage of a deployment (LMDeploy's quant_policy 0/8/4); 'auto': a workspace's recorded policy, else fp16. */
export type KvPolicy = 'auto' | 'fp16' | 'int8' | 'int4';

/**
 * A model version served behind the OpenAI API under `name` (the OpenAI `model` field). Every worker-infer
 * loads each deployment with these options and consumes its queue `infer-<name>`.
 */
@Entity('deployments')
export class DeploymentEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  /** [A-Za-z0-9_-]{1,64}: the OpenAI model id and the queue suffix. */
  @Column({ type: 'text', unique: true })
  name!: string;

  @Column({ name: 'version_id', type: 'uuid' })
  versionId!: string;

  @ManyToOne('ModelVersionEntity', { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'version_id' })
  version?: ModelVersionEntity;

  @Column({ name: 'kv_policy', type: 'text', default: 'fp16' })
  kvPolicy!: KvPolicy;

  /** LMDeploy's --cache-max-entry-count: the fraction of free memory given to the KV cache (null: engine default). */
  @Column({ name: 'cache_max_entry_count', type: 'double precision', nullable: true })
  cacheMaxEntryCount!: number | null;

  /** Running batch slots per worker (BullMQ concurrency of the queue). */
  @Column({ name: 'max_batch_size', type: 'integer' })
  maxBatchSize!: number;

  /** Longest prompt + completion (null: the engine's default for the model). */
  @Column({ name: 'session_len', type: 'integer', nullable: true })
  sessionLen!: number | null;

  /** LMDeploy's --tp: the model is sharded over this many GPUs of each worker's host (cpu: threads); 1: no sharding. */
  @Column({ type: 'integer', default: 1 })
  tp!: number;

  /** LMDeploy's --enable-prefix-caching: requests reuse the KV of prompt prefixes cached by earlier ones. */
  @Column({ name: 'enable_prefix_caching', type: 'boolean', default: false })
  enablePrefixCaching!: boolean;

  /** vLLM's / LMDeploy's --reasoning-parser (serving/reasoning.ts): chat replies' think blocks become reasoning_content. */
  @Column({ name: 'reasoning_parser', type: 'text', nullable: true })
  reasoningParser!: ReasoningParser | null;

  /**
   * Speculative decoding (LMDeploy's --speculative-algorithm, vLLM's speculative_config): {method: 'ngram',
   * numDraftTokens, promptLookupMax?, promptLookupMin?} as given (validated by the engine's rules); null: off.
   */
  @Column({ type: 'jsonb', nullable: true })
  speculative!: ServingSpeculative | null;

  /** Requests admitted at once (waiting + running) before the API answers 429. */
  @Column({ name: 'max_pending', type: 'integer' })
  maxPending!: number;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
