import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/** One finished (or failed/cancelled) serving request: what it cost and how long each phase took. */
@Entity('request_timings')
@Index(['deploymentName', 'createdAt'])
export class RequestTimingEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  /** The OpenAI response id (chatcmpl-… / cmpl-…), also the BullMQ job id. */
  @Column({ name: 'request_id', type: 'text', unique: true })
  requestId!: string;

  /** Not a foreign key: timings outlive the deployment they were served by. */
  @Column({ name: 'deployment_id', type: 'uuid', nullable: true })
  deploymentId!: string | null;

  @Column({ name: 'deployment_name', type: 'text' })
  deploymentName!: string;

  /** 'chat' | 'completion' | 'interactive' */
  @Column({ type: 'text' })
  kind!: string;

  @Column({ name: 'worker_id', type: 'uuid', nullable: true })
  workerId!: string | null;

  /** Enqueue → the engine's first step of the request (queue wait + engine wait). */
  @Column({ name: 'queued_ms', type: 'double precision' })
  queuedMs!: number;

  /** Enqueue → first token (null: none was generated). */
  @Column({ name: 'ttft_ms', type: 'double precision', nullable: true })
  ttftMs!: number | null;

  /** Enqueue → last token. */
  @Column({ name: 'total_ms', type: 'double precision' })
  totalMs!: number;

  @Column({ name: 'prompt_tokens', type: 'integer' })
  promptTokens!: number;

  @Column({ name: 'completion_tokens', type: 'integer' })
  completionTokens!: number;

  /** Of promptTokens, how many came from the prefix cache (deployments with enablePrefixCaching). */
  @Column({ name: 'cached_tokens', type: 'integer', default: 0 })
  cachedTokens!: number;

  /** Speculative decoding: draft tokens verified for the request, and of those accepted (null: the deployment does not speculate). */
  @Column({ name: 'draft_tokens', type: 'integer', nullable: true })
  draftTokens!: number | null;

  @Column({ name: 'accepted_draft_tokens', type: 'integer', nullable: true })
  acceptedDraftTokens!: number | null;

  /** 'stop' | 'length' | 'cancelled' | 'error' (the first choice's, or the worst of several). */
  @Column({ name: 'finish_reason', type: 'text' })
  finishReason!: string;

  @Column({ type: 'text', nullable: true })
  error!: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
