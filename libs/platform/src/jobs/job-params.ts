// Typed params of each job type, validated by the API (400 naming the field) and again by the worker
// (bad input → UnrecoverableError). Names follow LMDeploy's flags, camelCased.
import { plainToInstance } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsNumber,
  IsOptional,
  IsString,
  IsUUID,
  Matches,
  Max,
  MaxLength,
  Min,
  validateSync,
  type ValidationError,
} from 'class-validator';
import { InvalidInputError } from '../errors';
import { JobName } from '../queue/jobs';

export class CalibrateParams {
  @IsUUID('all') versionId!: string;
  /** Calibration text: a built-in set by name (cmake-docs), or a .txt / .jsonl ("text" per line) file under MODEL_ROOTS. */
  @IsString() @MaxLength(4096) calibDataset!: string;
  @IsOptional() @IsInt() @Min(1) @Max(100_000) calibSamples?: number;
  @IsOptional() @IsInt() @Min(16) @Max(131_072) calibSeqlen?: number;
}

export class AutoAwqParams {
  @IsOptional() @IsUUID('all') versionId?: string;
  /** The AutoAWQ GEMM layout holds 4-bit weights. */
  @IsOptional() @IsIn([4]) wBits?: number;
  @IsOptional() @IsIn([32, 64, 128]) wGroupSize?: number;
  @IsOptional() @IsBoolean() searchScale?: boolean;
  @IsOptional() @IsBoolean() searchClip?: boolean;
  /** Standalone auto_awq calibrates first from this file; in a pipeline the calibrate step's output is used. */
  @IsOptional() @IsString() @MaxLength(4096) calibDataset?: string;
  @IsOptional() @IsInt() @Min(1) @Max(100_000) calibSamples?: number;
  @IsOptional() @IsInt() @Min(16) @Max(131_072) calibSeqlen?: number;
}

/** KV-cache quantization of convert and eval (LMDeploy's `--quant-policy` and `--kv-calib-dir`). */
class KvQuantParams {
  /** 0: fp16 cache, 8: int8, 4: int4 (convert records it in the workspace; eval measures with it). */
  @IsOptional() @IsIn([0, 4, 8]) quantPolicy?: 0 | 4 | 8;
  /** Calibrated per-head KV scales from a `lite calibrate` work dir under MODEL_ROOTS (needs quantPolicy 4 or 8)... */
  @IsOptional() @IsString() @MaxLength(4096) kvCalibDir?: string;
  /** ...or from a completed calibrate job of the platform (its calibration artifacts). */
  @IsOptional() @IsUUID('all') kvCalibJobId?: string;
}

export class ConvertParams extends KvQuantParams {
  @IsOptional() @IsUUID('all') versionId?: string;
  @IsOptional() @IsIn(['workspace']) format?: 'workspace';
}

export class EvalParams extends KvQuantParams {
  /** Required for a standalone eval; in a pipeline the previous step's version is evaluated. */
  @IsOptional() @IsUUID('all') versionId?: string;
  /** Text file to measure perplexity on (under MODEL_ROOTS). */
  @IsString() @MaxLength(4096) datasetFile!: string;
  @IsOptional() @IsInt() @Min(8) @Max(131_072) seqlen?: number;
  @IsOptional() @IsInt() @Min(1) @Max(1_000_000) maxWindows?: number;
  /**
   * For a derived version (quantized, workspace): also give the perplexity of its unquantized base on the same text
   * and settings (reused from an earlier eval when there is one, else measured in this job). Default true.
   */
  @IsOptional() @IsBoolean() compareToBase?: boolean;
}

export class InferParams {
  @IsUUID('all') versionId!: string;
  @IsOptional() @IsString() @Matches(/^[A-Za-z0-9_-]{1,64}$/, { message: 'deploymentId must match [A-Za-z0-9_-]{1,64}' }) deploymentId?: string;
  @IsArray() @ArrayMinSize(1) @ArrayMaxSize(256) @IsString({ each: true }) @MaxLength(100_000, { each: true }) prompts!: string[];
  @IsOptional() @IsInt() @Min(1) @Max(32_768) maxNewTokens?: number;
  @IsOptional() @IsNumber() @Min(0) @Max(2) temperature?: number;
  @IsOptional() @IsNumber() @Min(0) @Max(1) topP?: number;
  @IsOptional() @IsInt() @Min(0) @Max(100_000) topK?: number;
  @IsOptional() @IsNumber() @Min(0) @Max(1) minP?: number;
  @IsOptional() @IsInt() @Min(0) seed?: number;
}

export interface JobParamsOf {
  [JobName.Calibrate]: CalibrateParams;
  [JobName.AutoAwq]: AutoAwqParams;
  [JobName.Convert]: ConvertParams;
  [JobName.Eval]: EvalParams;
  [JobName.Infer]: InferParams;
}

export const JOB_PARAMS_CLASS: { [N in JobName]: new () => JobParamsOf[N] } = {
  [JobName.Calibrate]: CalibrateParams,
  [JobName.AutoAwq]: AutoAwqParams,
  [JobName.Convert]: ConvertParams,
  [JobName.Eval]: EvalParams,
  [JobName.Infer]: InferParams,
};

export interface FieldError {
  field: string;
  errors: string[];
}

/** class-validator errors flattened to dotted field paths. */
export function flattenValidationErrors(errors: ValidationError[], prefix = ''): FieldError[] {
  const out: FieldError[] = [];
  for (const e of errors) {
    const field = prefix ? `${prefix}.${e.property}` : e.property;
    if (e.constraints) out.push({ field, errors: Object.values(e.constraints) });
    if (e.children?.length) out.push(...flattenValidationErrors(e.children, field));
  }
  return out;
}

export function describeFieldErrors(errs: FieldError[]): string {
  return errs.map((e) => `${e.field}: ${e.errors.join('; ')}`).join(', ');
}

/** Why KV-cache params that each pass validation do not go together, or null. */
export function kvQuantProblem(p: KvQuantParams, prefix = 'params'): FieldError | null {
  if (p.kvCalibDir !== undefined && p.kvCalibJobId !== undefined) {
    return { field: `${prefix}.kvCalibJobId`, errors: ['give kvCalibDir or kvCalibJobId, not both'] };
  }
  if ((p.kvCalibDir !== undefined || p.kvCalibJobId !== undefined) && !p.quantPolicy) {
    return { field: `${prefix}.quantPolicy`, errors: ['calibrated KV scales (kvCalibDir, kvCalibJobId) need quantPolicy 4 or 8'] };
  }
  return null;
}

/** Validates `params` for a job type; throws InvalidInputError naming each bad field (prefixed `params.`). */
export function validateJobParams<N extends JobName>(type: N, params: unknown, prefix = 'params'): JobParamsOf[N] {
  if (params === undefined || params === null) params = {};
  if (typeof params !== 'object' || Array.isArray(params)) {
    throw new InvalidInputError(`${prefix}: must be an object`, [{ field: prefix, errors: ['must be an object'] }]);
  }
  const inst = plainToInstance(JOB_PARAMS_CLASS[type] as new () => object, params) as JobParamsOf[N];
  const errors = validateSync(inst as object, { whitelist: true, forbidNonWhitelisted: true, forbidUnknownValues: true });
  if (errors.length) {
    const fields = flattenValidationErrors(errors, prefix);
    throw new InvalidInputError(describeFieldErrors(fields), fields);
  }
  const kv = inst instanceof KvQuantParams ? kvQuantProblem(inst, prefix) : null;
  if (kv) throw new InvalidInputError(describeFieldErrors([kv]), [kv]);
  return inst;
}
