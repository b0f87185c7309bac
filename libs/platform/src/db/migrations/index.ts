import { Initial1764072000000 } from './1764072000000-initial';
import { Serving1764090000000 } from './1764090000000-serving';
import { TensorParallel1764110000000 } from './1764110000000-tensor-parallel';
import { PrefixCaching1764160000000 } from './1764160000000-prefix-caching';
import { ReasoningParser1764260000000 } from './1764260000000-reasoning-parser';
import { Speculative1764280000000 } from './1764280000000-speculative';

/** Every migration, in order. New ones are appended here (no glob: works the same under ts and dist). */
export const MIGRATIONS = [Initial1764072000000, Serving1764090000000, TensorParallel1764110000000, PrefixCaching1764160000000, ReasoningParser1764260000000, Speculative1764280000000];
