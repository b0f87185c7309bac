// The lmfleet command tree, mirroring LMDeploy's CLI (`lmdeploy lite calibrate|auto_awq`, `convert`, `chat`,
// `serve api_server|api_client`, `check_env`, `list`) plus `eval ppl`. Flags keep LMDeploy's names. Local mode runs on @lmfleet/engine;
// `--api URL` (or LMFLEET_API) runs lite/convert/eval as jobs on an LMFleet platform over REST (./remote.ts).
import { BUILTIN_CALIB_DATASETS } from '@lmfleet/engine/quant/datasets';
import { Command, Option } from 'commander';
import { autoAwqCommand, parseBool } from './commands/auto-awq';
import { calibrateCommand } from './commands/calibrate';
import { chatCommand } from './commands/chat';
import { checkEnvCommand, listCommand, LMFLEET_VERSION } from './commands/check-env';
import { convertCommand } from './commands/convert';
import { deployCommand, listDeployments, undeployCommand } from './commands/deploy';
import { evalPplCommand } from './commands/eval-ppl';
import { apiClientCommand } from './commands/serve-api-client';
import { apiServerCommand } from './commands/serve-api-server';
import { CliExit, type CliIO } from './io';
import { parseBackend, parseChatReasoningParserArg, parseFloatArg, parseIntArg, parseReasoningParserArg, speculativeFlags, speculativeFromFlags } from './options';
import {
  ApiClient,
  autoAwqParams,
  calibrateParams,
  convertParams,
  evalParams,
  listJobs,
  resolveVersion,
  runRemoteJob,
  showJob,
} from './remote';

const REMOTE_HELP =
  '\nWith --api URL the command runs as a job on the platform: the model directory is registered (or found), the job\n' +
  'is submitted and polled. Ctrl-C while waiting just exits; the job keeps running (see `lmfleet jobs JOB_ID`).\n';

function apiOf(cmd: Command, io: CliIO): ApiClient | undefined {
  const url = cmd.optsWithGlobals().api as string | undefined;
  // LMFLEET_API_KEY: sent as a bearer token, for a platform started with API keys.
  return url ? new ApiClient(url, io.fetch ?? fetch, process.env.LMFLEET_API_KEY || undefined) : undefined;
}

function pollMs(): number {
  const n = Number(process.env.LMFLEET_POLL_MS);
  return Number.isFinite(n) && n > 0 ? n : 500;
}

function needModel(model: string | undefined, what: string): string {
  if (!model) throw new CliExit(2, `lmfleet ${what}: missing the model directory (--version-id needs --api)`);
  return model;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

function backendOption(): Option {
  return new Option('--backend <backend>', 'inference backend: auto (cuda, else cpu), cpu or cuda').default('auto').argParser(parseBackend);
}

function calibOptions(cmd: Command): Command {
  return cmd
    .option(
      '--calib-dataset <name>',
      `calibration data: a built-in set (${BUILTIN_CALIB_DATASETS.map((d) => d.name).join(', ')}: shipped, works offline), a .txt file, or a .jsonl file with a "text" field per line (LMDeploy's hub sets such as ptb are not shipped)`,
      'cmake-docs',
    )
    .option('--calib-samples <n>', 'number of calibration samples', parseIntArg('--calib-samples', 1), 128)
    .option('--calib-seqlen <n>', 'tokens per calibration sample', parseIntArg('--calib-seqlen', 1), 2048)
    .option('--work-dir <dir>', 'folder for the results', './work_dir')
    .option('--batch-size <n>', 'samples per forward pass', parseIntArg('--batch-size', 1), 1)
    .option('--dtype <dtype>', 'compute dtype: auto, float16 or bfloat16', 'auto')
    .addOption(new Option('--device <device>', 'device to calibrate on (cuda falls back to cpu when unavailable)').choices(['cuda', 'cpu']).default('cuda'));
}

export function createProgram(io: CliIO): Command {
  const program = new Command('lmfleet')
    .description('LMFleet: quantize, evaluate and serve large language models (LMDeploy\'s workflow in TypeScript)')
    .version(LMFLEET_VERSION)
    .addOption(new Option('--api <url>', 'run the command as a job on an LMFleet platform API instead of locally (lite, convert, eval ppl, jobs)').env('LMFLEET_API'))
    .showHelpAfterError()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });

  program.hook('preAction', (_root, action) => {
    const api = action.optsWithGlobals().api as string | undefined;
    const name = action.parent && action.parent !== program ? `${action.parent.name()} ${action.name()}` : action.name();
    if (api && name === 'chat') {
      throw new CliExit(2, `lmfleet chat --api: not implemented: chat with a platform's deployment through \`lmfleet serve api_client URL\``);
    }
    if (api && (name === 'serve api_client' || name === 'serve api_server')) {
      throw new CliExit(2, `lmfleet ${name} --api: not supported: ${name === 'serve api_client' ? 'give the server URL as the argument' : 'api_server starts its own platform'}`);
    }
  });

  // LMDeploy's --quant-policy (KV cache int8/int4) and the calibrated-scales source
  const quantPolicyOption = () =>
    new Option('--quant-policy <n>', 'KV cache quantization: 0 (fp16), 8 (int8), 4 (int4); default: the workspace\'s, else 0').choices(['0', '4', '8']);
  const kvCalibOption = () =>
    new Option(
      '--kv-calib-dir <dir>',
      'a lite calibrate work dir: fixed per-head KV scales/zero points from its K/V stats instead of online ones (with --api: a directory under the platform\'s MODEL_ROOTS, or a calibrate job id)',
    );
  const lite = program.command('lite').description('quantization tools (calibrate, auto_awq)');
  calibOptions(lite.command('calibrate').description('collect activation statistics of a model on a calibration set').argument('[model]', 'HF model directory'))
    .option('--version-id <uuid>', 'with --api: a registered version to use instead of a model directory')
    .option('--json', 'with --api: print the job result as JSON', false)
    .addHelpText('after', REMOTE_HELP)
    .action(async (model: string | undefined, o, cmd: Command) => {
      const api = apiOf(cmd, io);
      if (!api) return calibrateCommand(io, needModel(model, 'lite calibrate'), o);
      const versionId = await resolveVersion(api, model, o.versionId);
      await runRemoteJob(io, api, 'calibrate', calibrateParams(versionId, o), { label: 'calibrate', json: o.json, pollMs: pollMs() });
    });
  calibOptions(lite.command('auto_awq').description('quantize a model to 4-bit AWQ (AutoAWQ GEMM layout)').argument('[model]', 'HF model directory'))
    .option('--version-id <uuid>', 'with --api: a registered version to use instead of a model directory')
    .option('--json', 'with --api: print the job result as JSON', false)
    .addHelpText('after', REMOTE_HELP)
    .option('--w-bits <n>', 'weight bits', parseIntArg('--w-bits', 1), 4)
    .option('--w-sym', 'symmetric quantization (no zero points)', false)
    .option('--w-group-size <n>', 'weights per quantization group', parseIntArg('--w-group-size', 1), 128)
    .option('--search-scale [bool]', 'search AWQ scales (false: no scaling)', parseBool('--search-scale'), true)
    .option('--search-clip [bool]', 'search AWQ weight clipping (false: no clipping)', parseBool('--search-clip'), true)
    .action(async (model: string | undefined, o, cmd: Command) => {
      const api = apiOf(cmd, io);
      if (!api) return autoAwqCommand(io, needModel(model, 'lite auto_awq'), o);
      const params = autoAwqParams('', o);
      const versionId = await resolveVersion(api, model, o.versionId);
      await runRemoteJob(io, api, 'auto_awq', { ...params, versionId }, { label: 'auto_awq', json: o.json, pollMs: pollMs() });
    });

  program
    .command('convert')
    .description('convert a HF or AWQ model to the engine workspace')
    .argument('<model_name>', 'architecture name (e.g. qwen2)')
    .argument('[model_path]', 'HF model directory')
    .addOption(new Option('--model-format <format>', 'input format').choices(['hf', 'awq']).default('hf'))
    .option('--group-size <n>', 'AWQ group size', parseIntArg('--group-size', 0), 0)
    .option('--dst-path <dir>', 'output workspace', './workspace')
    .option('--tp <n>', 'tensor parallel degree', parseIntArg('--tp', 1), 1)
    .option('--dtype <dtype>', 'auto, float16 or bfloat16', 'auto')
    .addOption(quantPolicyOption())
    .addOption(kvCalibOption())
    .option('--version-id <uuid>', 'with --api: a registered version (e.g. an auto_awq output) to use instead of a model directory')
    .option('--json', 'with --api: print the job result as JSON', false)
    .addHelpText('after', REMOTE_HELP)
    .action(async (modelName: string, modelPath: string | undefined, o, cmd: Command) => {
      const api = apiOf(cmd, io);
      if (!api) return convertCommand(io, modelName, needModel(modelPath, 'convert'), o);
      const params = convertParams('', o);
      const versionId = await resolveVersion(api, modelPath, o.versionId);
      await runRemoteJob(io, api, 'convert', { ...params, versionId }, { label: 'convert', json: o.json, pollMs: pollMs() });
    });

  speculativeFlags(program
    .command('chat')
    .description('chat with a model in the terminal (streaming; the KV cache is kept between turns)')
    .argument('<model_path>', 'HF model directory')
    .addOption(backendOption())
    .option('--session-len <n>', 'max tokens of a conversation (default: the model\'s context length)', parseIntArg('--session-len', 1))
    .option('--cache-max-entry-count <f>', 'fraction of free memory for the KV cache', parseFloatArg('--cache-max-entry-count', 0, 1))
    .option('--max-batch-size <n>', 'max sequences per batch', parseIntArg('--max-batch-size', 1))
    .addOption(quantPolicyOption())
    .addOption(kvCalibOption())
    .option('--tp <n>', 'tensor parallel degree: shard the model over this many GPUs of this host (cpu: threads)', parseIntArg('--tp', 1), 1)
    .option('--threads <n>', 'CPU threads (cpu backend)', parseIntArg('--threads', 1))
    .option('--system <prompt>', 'system prompt')
    .option('--chat-template <file>', 'a Jinja chat template file to use instead of the model\'s')
    .option('--temperature <t>', 'sampling temperature (0 = greedy)', parseFloatArg('--temperature', 0), 0.7)
    .option('--top-p <p>', 'nucleus sampling mass', parseFloatArg('--top-p', 0, 1), 0.8)
    .option('--top-k <k>', 'sample among the k most likely tokens (0 = all)', parseIntArg('--top-k', 0), 40)
    .option('--min-p <p>', 'drop tokens less likely than this fraction of the most likely one (0 = off)', parseFloatArg('--min-p', 0, 1))
    .option('--repetition-penalty <r>', 'penalty for repeated tokens (1 = none)', parseFloatArg('--repetition-penalty', 0), 1.0)
    .option('--seed <n>', 'random seed', parseIntArg('--seed', 0))
    .option('--max-new-tokens <n>', 'max tokens per reply', parseIntArg('--max-new-tokens', 1), 512)
    .option('--stop-word <s>', 'stop generating at this string (repeatable)', collect)
    .option('--reasoning-parser <name>', "reasoning models: the reply's <think> block is printed as thinking (dimmed on a terminal) before the answer (qwen3, the default for Qwen3ForCausalLM; deepseek_r1 / deepseek-r1 / qwen-qwq when the prompt opens the block; none: the reply as written)", parseChatReasoningParserArg)
    .option('-v, --verbose', 'print timings and debug logs', false))
    .action(async (modelPath: string, o) => {
      const speculative = speculativeFromFlags(o, 'chat');
      await chatCommand(io, modelPath, { ...o, stopWords: o.stopWord, ...(speculative ? { speculative } : {}) });
    });

  const serve = program.command('serve').description('serve a model (OpenAI-compatible API)');
  speculativeFlags(serve
    .command('api_server')
    .description('start the platform on this machine (Postgres + Redis if needed, API, worker-infer) and serve a model behind the OpenAI-compatible API')
    .argument('<model_path>', 'HF model directory, AWQ checkpoint or engine workspace')
    .addOption(backendOption())
    .option('--server-name <host>', 'host to bind', '0.0.0.0')
    .option('--server-port <port>', 'port', parseIntArg('--server-port', 1), 23333)
    .option('--model-name <name>', 'model name reported by /v1/models (default: the directory name)')
    .option('--session-len <n>', 'max tokens per session', parseIntArg('--session-len', 16))
    .option('--cache-max-entry-count <f>', 'fraction of free memory for the KV cache', parseFloatArg('--cache-max-entry-count', 0, 1))
    .option('--max-batch-size <n>', 'max sequences per batch', parseIntArg('--max-batch-size', 1))
    .option('--quant-policy <n>', 'KV cache: 0 fp16, 4 int4, 8 int8', parseIntArg('--quant-policy', 0), 0)
    .option('--tp <n>', 'tensor parallel degree: the worker shards the model over this many GPUs (cpu: threads)', parseIntArg('--tp', 1), 1)
    .option('--enable-prefix-caching', 'reuse the KV cache of prompt prefixes shared with earlier requests (usage.prompt_tokens_details.cached_tokens)', false)
    .option('--reasoning-parser <name>', "reasoning models: chat replies' <think> blocks become reasoning_content (qwen3; deepseek_r1 / deepseek-r1 / qwen-qwq when the prompt opens the block)", parseReasoningParserArg)
    .option('--api-keys <keys...>', 'API keys clients must send as "Authorization: Bearer <key>"')
    .option('--log-dir <dir>', 'where the API and worker logs go (default: a new temporary directory)')
    .option('--ready-timeout <s>', 'seconds to wait for the model to load', parseIntArg('--ready-timeout', 1), 1800)
    .option('--with-quant', 'also start a worker-quant (lite calibrate/auto_awq, convert, eval jobs with --api URL)', false)
    .addHelpText('after', '\nServices: DATABASE_URL / REDIS_URL when set, else Postgres and Redis on 127.0.0.1:5432/6379, else it starts them\n(scripts/services.sh, as the quickstart does). Ctrl-C stops everything it started.\n'))
    .action(async (modelPath: string, o) => {
      const speculative = speculativeFromFlags(o, 'serve api_server');
      await apiServerCommand(io, modelPath, { ...o, ...(speculative ? { speculative } : {}) });
    });
  serve
    .command('api_client')
    .description('chat with an OpenAI-compatible API server from the terminal (streaming; keeps the conversation)')
    .argument('<api_server_url>', 'e.g. http://localhost:23333')
    .option('--api-key <key>', 'API key (sent as "Authorization: Bearer <key>")')
    .option('--model-name <name>', 'model to chat with (default: the first of /v1/models)')
    .option('--system <prompt>', 'system prompt')
    .option('--temperature <t>', 'sampling temperature', parseFloatArg('--temperature', 0))
    .option('--top-p <p>', 'nucleus sampling mass', parseFloatArg('--top-p', 0, 1))
    .option('--top-k <k>', 'sample among the k most likely tokens (0 = all)', parseIntArg('--top-k', 0))
    .option('--min-p <p>', 'drop tokens less likely than this fraction of the most likely one (0 = off)', parseFloatArg('--min-p', 0, 1))
    .option('--max-tokens <n>', 'max tokens per reply', parseIntArg('--max-tokens', 1))
    .option('--seed <n>', 'random seed', parseIntArg('--seed', 0))
    .action(async (url: string, o) => {
      await apiClientCommand(io, url, o);
    });

  program
    .command('check_env')
    .description('what this machine has for LMFleet: Node, the native backends (and why one is unavailable), GPUs, nvcc, cmake; with --api, the platform\'s health')
    .action(async (_o, cmd: Command) => {
      await checkEnvCommand(io, { api: cmd.optsWithGlobals().api as string | undefined, fetch: io.fetch });
    });

  program
    .command('list')
    .description('the model architectures the engine runs (config.json "architectures")')
    .action(() => listCommand(io));

  const evalCmd = program.command('eval').description('evaluate models');
  evalCmd
    .command('ppl')
    .description('perplexity over non-overlapping windows of a text file (no BOS; ppl = exp(mean of window mean NLLs))')
    .argument('[model_path]', 'HF model directory')
    .requiredOption('--dataset <file>', 'text file to evaluate on')
    .requiredOption('--seqlen <n>', 'tokens per window', parseIntArg('--seqlen', 2))
    .option('--max-windows <k>', 'evaluate only the first k windows', parseIntArg('--max-windows', 1))
    .option('--json', 'print the result as JSON', false)
    .addOption(backendOption())
    .option('--threads <n>', 'CPU threads (cpu backend)', parseIntArg('--threads', 1))
    .option('--tp <n>', 'tensor parallel degree: shard the model over this many GPUs of this host (cpu: threads)', parseIntArg('--tp', 1), 1)
    .addOption(quantPolicyOption())
    .addOption(kvCalibOption())
    .option('--version-id <uuid>', 'with --api: a registered version to evaluate instead of a model directory')
    .addHelpText('after', REMOTE_HELP)
    .action(async (modelPath: string | undefined, o, cmd: Command) => {
      const api = apiOf(cmd, io);
      if (api && o.tp !== 1) throw new CliExit(2, `lmfleet eval ppl: --tp ${o.tp} runs locally only (not with --api yet)`);
      if (!api) return evalPplCommand(io, needModel(modelPath, 'eval ppl'), o);
      const versionId = await resolveVersion(api, modelPath, o.versionId);
      await runRemoteJob(io, api, 'eval', evalParams(versionId, o), { label: 'eval ppl', json: o.json, pollMs: pollMs() });
    });

  program
    .command('jobs')
    .description('with --api: list the platform\'s recent jobs, or show one job and its artifacts')
    .argument('[job_id]', 'a job id')
    .option('--json', 'print JSON', false)
    .action(async (jobId: string | undefined, o, cmd: Command) => {
      const api = apiOf(cmd, io);
      if (!api) throw new CliExit(2, 'lmfleet jobs: needs --api URL (or LMFLEET_API)');
      if (jobId) await showJob(io, api, jobId, o.json);
      else await listJobs(io, api, o.json);
    });

  speculativeFlags(program
    .command('deploy')
    .description('with --api: serve a model version behind the platform\'s OpenAI API and wait until a worker has it loaded')
    .argument('[model]', 'HF model directory (registered if new), or use --version-id')
    .requiredOption('--name <name>', 'deployment name: the OpenAI `model` id ([A-Za-z0-9_-])')
    .option('--version-id <uuid>', 'a registered version (e.g. an AWQ workspace) instead of a model directory')
    .option('--session-len <n>', 'max tokens per session (prompt + completion)', parseIntArg('--session-len', 16))
    .option('--cache-max-entry-count <f>', 'fraction of free memory for the KV cache', parseFloatArg('--cache-max-entry-count', 0, 1))
    .option('--max-batch-size <n>', 'batch slots per worker', parseIntArg('--max-batch-size', 1))
    .option('--max-pending <n>', 'requests admitted at once (waiting + running) before 429', parseIntArg('--max-pending', 1))
    .option('--quant-policy <n>', 'KV cache: 0 fp16, 8 int8, 4 int4', parseIntArg('--quant-policy', 0))
    .option('--tp <n>', 'tensor parallel degree: each worker shards the model over this many GPUs of its host', parseIntArg('--tp', 1))
    .option('--enable-prefix-caching', 'reuse the KV cache of prompt prefixes shared with earlier requests', false)
    .option('--reasoning-parser <name>', "reasoning models: chat replies' <think> blocks become reasoning_content (qwen3; deepseek_r1 / deepseek-r1 / qwen-qwq when the prompt opens the block)", parseReasoningParserArg)
    .option('--no-wait', 'return once the deployment is recorded')
    .option('--timeout <s>', 'seconds to wait for a worker to load it', parseIntArg('--timeout', 1), 300)
    .option('--json', 'print JSON', false))
    .action(async (modelPath: string | undefined, o, cmd: Command) => {
      const speculative = speculativeFromFlags(o, 'deploy');
      const api = apiOf(cmd, io);
      if (!api) throw new CliExit(2, 'lmfleet deploy: needs --api URL (or LMFLEET_API)');
      await deployCommand(io, api, modelPath, { ...o, ...(speculative ? { speculative } : {}) }, pollMs());
    });
  program
    .command('deployments')
    .description('with --api: list deployments and the workers serving them')
    .option('--json', 'print JSON', false)
    .action(async (o, cmd: Command) => {
      const api = apiOf(cmd, io);
      if (!api) throw new CliExit(2, 'lmfleet deployments: needs --api URL (or LMFLEET_API)');
      await listDeployments(io, api, o.json);
    });
  program
    .command('undeploy')
    .description('with --api: remove a deployment (running requests finish)')
    .argument('<name>', 'deployment name or id')
    .action(async (name: string, _o, cmd: Command) => {
      const api = apiOf(cmd, io);
      if (!api) throw new CliExit(2, 'lmfleet undeploy: needs --api URL (or LMFLEET_API)');
      await undeployCommand(io, api, name);
    });

  return program;
}
