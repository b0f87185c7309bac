#!/usr/bin/env node
// The quickstart's client half: drives the running platform over REST only, as any user would.
//   node scripts/quickstart-client.js API_URL MODEL_DIR DATASET
'use strict';
const [api, modelDir, dataset] = process.argv.slice(2);
const tty = process.stderr.isTTY;
const list = (r) => (Array.isArray(r) ? r : r?.items ?? []);

async function call(method, path, body) {
  const res = await fetch(api + path, {
    method,
    headers: body ? { 'content-type': 'application/json' } : undefined,
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  const data = text ? JSON.parse(text) : undefined;
  if (!res.ok) {
    const err = new Error(`${method} ${path} -> ${res.status}: ${data?.message ?? text}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

function bar(label, frac, extra = '') {
  const w = 30, n = Math.round(Math.max(0, Math.min(1, frac)) * w);
  const line = `${label.padEnd(8)} [${'#'.repeat(n)}${'.'.repeat(w - n)}] ${(frac * 100).toFixed(0).padStart(3)}% ${extra}`;
  if (tty) process.stderr.write(`\r${line}`); else process.stderr.write(line + '\n');
}

async function watch(job, label) {
  let last = -1;
  for (;;) {
    const j = await call('GET', `/jobs/${job.id}`);
    const p = Number(j.progress ?? 0);
    if (tty || p - last >= 0.25 || j.status !== 'running') { bar(label, p, `${j.status}${j.workerId ? ' on ' + j.workerId.slice(0, 8) : ''}`); last = p; }
    if (['completed', 'failed', 'cancelled'].includes(j.status)) {
      if (tty) process.stderr.write('\n');
      if (j.status !== 'completed') throw new Error(`${label} job ${j.id} ${j.status}: ${j.error}`);
      return j;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

(async () => {
  let model;
  try {
    model = (await call('POST', '/models', { path: modelDir })).model;
    console.log(`registered model ${model.name} (${model.id})`);
  } catch (e) {
    if (e.status !== 409) throw e;
    model = (await call('GET', '/models?limit=200')).items.find((m) => m.sourcePath === modelDir);
    console.log(`model already registered: ${model.name} (${model.id})`);
  }
  const versions = await call('GET', `/models/${model.id}/versions`);
  const base = versions.find((v) => !v.parentVersionId);
  console.log(`base version ${base.id}: ${base.format} ${base.dtype}, ${(Number(base.sizeBytes) / 2 ** 20).toFixed(1)} MiB`);

  const windows = Number(process.env.EVAL_WINDOWS ?? 16);
  const evalJob = await call('POST', '/jobs', {
    type: 'eval',
    params: { versionId: base.id, datasetFile: dataset, seqlen: 512, maxWindows: windows },
  });
  const ev = await watch(evalJob, 'eval fp16');
  console.log(`fp16 perplexity ${Number(ev.result.ppl).toFixed(2)} over ${ev.result.windows} windows of 512 tokens`);

  // LMDeploy's lite flow as one BullMQ flow: calibrate -> auto_awq (W4 g128) -> convert -> eval.
  const flow = await call('POST', '/pipelines/quantize', {
    versionId: base.id,
    calibrate: { calibDataset: 'cmake-docs', calibSamples: 8, calibSeqlen: 512 }, // the built-in offline set, disjoint from the eval text
    autoAwq: { wBits: 4, wGroupSize: 128 },
    eval: { datasetFile: dataset, seqlen: 512, maxWindows: windows },
  });
  const steps = [];
  for (const [j, label] of flow.jobs.map((j, i) => [j, ['calibrate', 'auto_awq', 'convert', 'eval w4'][i]])) steps.push(await watch(j, label));
  const [, awq, conv, evq] = steps;
  console.log(`AWQ W4 g128 perplexity ${Number(evq.result.ppl).toFixed(2)} (fp16 ${Number(ev.result.ppl).toFixed(2)}), AWQ search ${Number(awq.result.seconds).toFixed(0)} s`);

  const workspace = conv.result.versionId;
  const inferJob = await call('POST', '/jobs', {
    type: 'infer',
    params: { versionId: workspace, prompts: ['def read_file(path):'], maxNewTokens: 48, temperature: 0 },
  });
  const inf = await watch(inferJob, 'infer');
  for (const a of list(await call('GET', `/jobs/${inferJob.id}/artifacts`))) {
    const res = await fetch(`${api}/artifacts/${a.id}/download`);
    const first = JSON.parse((await res.text()).split('\n')[0]);
    console.log(`answer from the W4 workspace: ${JSON.stringify(first.text ?? first.output ?? first)}`);
  }

  // Serve it: deploy the W4 workspace on the running worker-infer and stream an OpenAI chat completion.
  const name = 'quickstart-w4';
  try { await call('DELETE', `/deployments/${name}`); } catch (e) { if (e.status !== 404) throw e; }
  await call('POST', '/deployments', { name, versionId: workspace, kvPolicy: 'int8', maxBatchSize: 8 });
  for (const end = Date.now() + 120_000; ;) {
    const view = await call('GET', `/deployments/${name}`);
    const failed = view.workers.find((w) => w.state === 'failed');
    if (failed) throw new Error(`deployment ${name} failed to load on ${failed.workerName}: ${failed.error ?? 'see var/logs/worker-infer.log'}`);
    if (view.workers.some((w) => w.state === 'ready')) break;
    if (Date.now() > end) throw new Error(`no worker-infer reported ${name} ready within 120 s`);
    await new Promise((r) => setTimeout(r, 300));
  }
  // The small model is a base (completion) model: /v1/completions shows it best; /v1/chat/completions works the same way.
  const prompt = 'def read_file(path):';
  const chat = await fetch(`${api}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: name, prompt, max_tokens: 48, temperature: 0, stream: true, stream_options: { include_usage: true } }),
  });
  if (!chat.ok) throw new Error(`POST /v1/completions -> ${chat.status}: ${await chat.text()}`);
  process.stdout.write(`deployed ${name} (W4 weights, int8 KV); streamed from POST /v1/completions:\n${prompt}`);
  let usage, buf = '';
  const decoder = new TextDecoder();
  for await (const part of chat.body) {
    buf += decoder.decode(part, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, i); buf = buf.slice(i + 2);
      const data = event.replace(/^data: /, '');
      if (data === '[DONE]') continue;
      const chunk = JSON.parse(data);
      if (chunk.usage) usage = chunk.usage;
      const delta = chunk.choices?.[0]?.text ?? chunk.choices?.[0]?.delta?.content;
      if (delta) process.stdout.write(delta);
    }
  }
  process.stdout.write('\n');
  if (usage) console.log(`usage: ${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`);
  console.log(`try it: curl -N ${api}/v1/chat/completions -H 'content-type: application/json' -d '{"model":"${name}","stream":true,"messages":[{"role":"user","content":"hi"}]}'`);
  console.log(`dashboard: ${api}/   (lineage, jobs, workers, playground)`);

  console.log('\nversions (lineage):');
  for (const v of await call('GET', `/models/${model.id}/versions`)) {
    console.log(`  ${v.id} ${v.format.padEnd(9)} ${String(v.dtype).padEnd(8)} ${(Number(v.sizeBytes) / 2 ** 20).toFixed(1).padStart(6)} MiB  parent=${v.parentVersionId ?? '-'}  metrics=${JSON.stringify(v.metrics ?? {})}`);
  }
  console.log('jobs:');
  for (const j of [ev, ...steps, inf]) {
    console.log(`  ${j.type.padEnd(9)} ${j.id} ${j.status} attempts=${j.attempts} worker=${String(j.workerId).slice(0, 8)}`);
    for (const a of list(await call('GET', `/jobs/${j.id}/artifacts`))) console.log(`    artifact ${a.kind} ${a.name ?? ''} ${a.bytes} B sha256=${a.sha256.slice(0, 12)}…`);
  }
})().catch((e) => { console.error(`quickstart failed: ${e.message}`); process.exit(1); });
