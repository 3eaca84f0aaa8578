// End-to-end tests of Slipway's jobs API through the official
// @northflank/js-client, pointed at Slipway by changing only the host.
//
// Run against a running Slipway whose jobs run as local processes
// (SLIPWAY_RUNTIME_DRIVER=process, which `go test ./e2e/` sets):
//
//	SLIPWAY_URL=http://127.0.0.1:8080 npm test
//
// Every test works in a project of its own run (RUN makes its name unique),
// which is deleted with its jobs at the end.
//
// The API is rate limited (1000 requests an hour by default) and this suite
// shares the budget with the others, so waits poll sparingly.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiClient, ApiClientInMemoryContextProvider } from '@northflank/js-client';

const BASE_URL = (process.env.SLIPWAY_URL ?? '').replace(/\/+$/, '');
const TOKEN = process.env.SLIPWAY_TOKEN || 'slipway-e2e-token';

if (!BASE_URL) {
  throw new Error('SLIPWAY_URL is not set: point it at a running Slipway, e.g. SLIPWAY_URL=http://127.0.0.1:8080');
}

const RUN = randomBytes(4).toString('hex').slice(0, 6);

/** Creates a client whose context points at Slipway. */
async function newClient({ token = TOKEN, ...opts } = {}) {
  const contextProvider = new ApiClientInMemoryContextProvider();
  await contextProvider.addContext({ name: 'slipway-e2e', token, host: BASE_URL });
  return new ApiClient(contextProvider, opts);
}

let client;
let projectId; // the project every test's jobs live in

before(async () => {
  client = await newClient();
  const res = await client.create.project({ data: { name: `E2E ${RUN} Jobs` } });
  assertOk(res, 'create the project');
  projectId = res.data.id;
});

after(async () => {
  if (projectId) {
    await client.delete.project({ parameters: { projectId }, options: { delete_child_objects: true } });
  }
});

// ---------------------------------------------------------------- helpers

/** Asserts a call succeeded; on failure the message shows the error envelope. */
function assertOk(res, what) {
  assert.equal(res.error, undefined, `${what} failed: ${JSON.stringify(res.error)}`);
  assert.equal(res.rawResponse.status, 200, `${what}: HTTP status`);
  assert.ok(res.data !== undefined && res.data !== null, `${what}: response has no "data"`);
}

/** Asserts a call failed with status and the error envelope's fields. */
function assertApiError(res, status, what) {
  assert.ok(res.error, `${what}: expected HTTP ${status}, got success with ${JSON.stringify(res.data)}`);
  assert.equal(res.error.status, status, `${what}: error.status (error: ${JSON.stringify(res.error)})`);
  assert.equal(res.rawResponse.status, status, `${what}: HTTP status`);
  assert.equal(typeof res.error.message, 'string', `${what}: error.message`);
  assert.ok(res.error.message.length > 0, `${what}: error.message is empty`);
  assert.equal(typeof res.error.id, 'string', `${what}: error.id`);
  assert.equal(res.data, undefined, `${what}: an error response carries no "data"`);
  return res.error;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function assertTimestamp(value, what) {
  assert.equal(typeof value, 'string', `${what} is not a string: ${JSON.stringify(value)}`);
  assert.match(value, RFC3339, `${what} is not RFC 3339`);
}

/** A job's deployment that runs command as a local process. */
function command(customCommand) {
  return { docker: { configType: 'customCommand', customCommand } };
}

async function createManualJob(data) {
  const res = await client.create.job.manual({ parameters: { projectId }, data });
  assertOk(res, `create manual job ${JSON.stringify(data.name)}`);
  return res.data;
}

async function startRun(jobId, data = {}) {
  const res = await client.start.job.run({ parameters: { projectId, jobId }, data });
  assertOk(res, `start a run of ${jobId}`);
  assert.equal(typeof res.data.id, 'string', 'run id');
  assert.ok(res.data.runName.startsWith(`${jobId}-`), `runName ${res.data.runName} does not start with the job id`);
  return res.data;
}

/**
 * Calls fn every interval ms until it returns a truthy value, and returns
 * that; fails after timeout ms with what describe() says of the last try.
 */
async function poll(fn, { timeout, interval, what, describe = (v) => JSON.stringify(v) }) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const last = await fn();
    if (last.done) return last.value;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeout} ms; last: ${describe(last.value)}`);
    await sleep(interval);
  }
}

/** Polls get.job.run until the run has concluded, and returns it. */
async function waitForRun(jobId, runId, { timeout = 20_000, interval = 100 } = {}) {
  return poll(async () => {
    const res = await client.get.job.run({ parameters: { projectId, jobId, runId } });
    assertOk(res, `get run ${runId}`);
    return { done: res.data.concluded, value: res.data };
  }, { timeout, interval, what: `run ${runId} of ${jobId} to conclude` });
}

/** A run's log lines, oldest first. */
async function runLogs(jobId, runId) {
  const res = await client.get.job.logs({ parameters: { projectId, jobId }, options: { runId, direction: 'forward' } });
  assertOk(res, `logs of run ${runId}`);
  assert.ok(Array.isArray(res.data), `logs: data must be an array, got ${JSON.stringify(res.data)}`);
  return res.data;
}

function assertLogLine(line, { log, containerId }, what) {
  assert.equal(line.log, log, `${what}: log`);
  assert.equal(line.containerId, containerId, `${what}: containerId`);
  assert.ok(line.ts instanceof Date && !Number.isNaN(line.ts.getTime()), `${what}: ts is not a valid Date: ${line.ts}`);
}

// ------------------------------------------------------------------ tests

// The cron job is created first, so that its first tick (at most a minute
// away) passes while the other tests run; the last test waits for it.
let cronJob;
let cronCreated;

test('create a cron job', async () => {
  const res = await client.create.job.cron({
    parameters: { projectId },
    data: {
      name: 'Every Minute', schedule: '* * * * *', concurrencyPolicy: 'forbid',
      deployment: command('echo tick from cron'),
    },
  });
  assertOk(res, 'create cron job');
  cronCreated = Date.now();
  cronJob = res.data;
  assert.equal(cronJob.id, 'every-minute');
  assert.equal(cronJob.jobType, 'cron');
  assert.equal(cronJob.schedule, '* * * * *');
  assert.deepEqual(cronJob.settings.cron, { schedule: '* * * * *', concurrencyPolicy: 'Forbid' });
  assert.equal(cronJob.suspended, false);
});

test('a manual job runs its command with its environment, and its logs are read back', async () => {
  const created = await createManualJob({
    name: 'Hello Job', description: 'says hello', backoffLimit: 1,
    deployment: command('echo hello from $WHO'),
    runtimeEnvironment: { WHO: 'the e2e suite' },
  });
  assert.equal(created.id, 'hello-job');
  assert.equal(created.jobType, 'manual');
  assert.equal(created.projectId, projectId);
  assert.equal(created.backoffLimit, 1);
  assert.deepEqual(created.deployment.docker, { configType: 'customCommand', customEntrypoint: '', customCommand: 'echo hello from $WHO' });
  assertTimestamp(created.createdAt, 'createdAt');

  const got = await client.get.job({ parameters: { projectId, jobId: created.id } });
  assertOk(got, 'get job');
  assert.equal(got.data.name, 'Hello Job');
  assert.equal(got.data.description, 'says hello');
  const list = await client.list.jobs({ parameters: { projectId } });
  assertOk(list, 'list jobs');
  assert.ok(list.data.jobs.some((j) => j.id === created.id && j.jobType === 'manual'), `list lacks the job: ${JSON.stringify(list.data)}`);

  const started = await startRun(created.id);
  const run = await waitForRun(created.id, started.id);
  assert.equal(run.status, 'SUCCESS', `run: ${JSON.stringify(run)}`);
  assert.equal(run.id, started.id);
  assert.equal(run.runName, started.runName);
  assert.equal(run.succeeded, 1);
  assert.equal(run.failed, 0);
  assert.equal(run.active, 0);
  assert.equal(run.concluded, true);
  if ('exitCode' in run) assert.equal(run.exitCode, 0);
  assertTimestamp(run.startedAt, 'startedAt');
  assertTimestamp(run.concludedAt, 'concludedAt');

  const lines = await runLogs(created.id, started.id);
  assert.equal(lines.length, 1, `logs: ${JSON.stringify(lines)}`);
  assertLogLine(lines[0], { log: 'hello from the e2e suite', containerId: `${started.runName}-1` }, 'log line');

  // A run's overrides change that run only.
  const other = await startRun(created.id, { runtimeEnvironment: { WHO: 'an override' } });
  assert.equal((await waitForRun(created.id, other.id)).status, 'SUCCESS');
  const otherLines = await runLogs(created.id, other.id);
  assert.deepEqual(otherLines.map((l) => l.log), ['hello from an override']);

  const runs = await client.get.job.runs({ parameters: { projectId, jobId: created.id } });
  assertOk(runs, 'get runs');
  assert.deepEqual(runs.data.runs.map((r) => r.id), [other.id, started.id], 'runs, newest first');
  for (const r of runs.data.runs) assert.equal(r.status, 'SUCCESS');
});

test('a failing command is retried backoffLimit times, then the run fails with its exit code', async () => {
  const job = await createManualJob({ name: 'Failing Job', backoffLimit: 2, deployment: command('echo try; exit 3') });
  const started = await startRun(job.id);
  // Retries wait 1 s, then 2 s.
  const run = await waitForRun(job.id, started.id, { timeout: 20_000, interval: 250 });
  assert.equal(run.status, 'FAILED', `run: ${JSON.stringify(run)}`);
  assert.equal(run.failed, 3, 'failed attempts');
  assert.equal(run.succeeded, 0);
  assert.equal(run.backoffLimit, 2);
  if ('retries' in run) assert.equal(run.retries, 2, 'retries');
  assert.equal(run.exitCode, 3, 'exitCode');
  assert.equal(run.reason, 'Error');
  const lines = await runLogs(job.id, started.id);
  assert.deepEqual(
    lines.map((l) => [l.containerId, l.log]),
    [1, 2, 3].map((n) => [`${started.runName}-${n}`, 'try']),
    'one "try" per attempt',
  );
});

test('the log tail delivers lines while the run is running', async () => {
  const job = await createManualJob({
    name: 'Tail Job',
    deployment: command('echo tail line 1; echo noise; sleep 1; echo tail line 2; sleep 1; echo tail line 3'),
  });
  const tail = await client.get.job.logTail({ parameters: { projectId, jobId: job.id }, options: { textIncludes: 'tail line' } });
  const received = [];
  const errors = [];
  tail.on('logs-received', (lines) => received.push(...lines));
  tail.on('error', (err) => errors.push(err));
  const opened = once(tail, 'open');
  // start() resolves when the session closes (and rejects when it fails),
  // so it is not awaited here.
  const session = tail.start().then(() => 'closed', (err) => err);
  await Promise.race([opened, sleep(10_000).then(() => assert.fail('the log tail did not open within 10 s'))]);

  let run;
  try {
    run = await startRun(job.id);
    // The first line arrives while the run still sleeps.
    await poll(async () => ({ done: received.length > 0 || errors.length > 0, value: received }), { timeout: 10_000, interval: 50, what: 'the first tailed line' });
    assert.deepEqual(errors, [], 'log tail errors');
    const live = await client.get.job.run({ parameters: { projectId, jobId: job.id, runId: run.id } });
    assertOk(live, 'get the run during the tail');
    assert.equal(live.data.status, 'RUNNING', 'the first line came through the tail only after the run had ended');

    await poll(async () => ({ done: received.length >= 3 || errors.length > 0, value: received.map((l) => l.log) }), { timeout: 15_000, interval: 50, what: 'three tailed lines' });
    assert.deepEqual(errors, [], 'log tail errors');
    assert.deepEqual(received.map((l) => l.log), ['tail line 1', 'tail line 2', 'tail line 3'], 'tailed lines (textIncludes filters "noise" out)');
    for (const [i, l] of received.entries()) assertLogLine(l, { log: `tail line ${i + 1}`, containerId: `${run.runName}-1` }, `tailed line ${i + 1}`);
  } finally {
    await tail.stop();
  }
  const outcome = await Promise.race([session, sleep(5_000).then(() => 'still open')]);
  assert.equal(outcome, 'closed', `the tail session after stop(): ${outcome}`);
  assert.equal((await waitForRun(job.id, run.id)).status, 'SUCCESS');
});

test('abort an active run: it ends FAILED (Aborted)', async () => {
  const job = await createManualJob({ name: 'Sleepy Job', deployment: command('sleep 30') });
  const started = await startRun(job.id);
  const res = await client.abort.job.run({ parameters: { projectId, jobId: job.id, runId: started.id } });
  assertOk(res, 'abort');
  const run = await waitForRun(job.id, started.id, { timeout: 5_000 });
  assert.equal(run.status, 'FAILED');
  assert.equal(run.reason, 'Aborted');
});

test('bad requests are refused through the client error object', async () => {
  const badCron = await client.create.job.cron({
    parameters: { projectId },
    data: { name: 'Bad Cron', schedule: '61 * * * *', deployment: command('true') },
  });
  const err = assertApiError(badCron, 400, 'invalid cron schedule');
  assert.ok(err.details && 'schedule' in err.details, `details should name "schedule": ${JSON.stringify(err)}`);
  assertApiError(await client.get.job({ parameters: { projectId, jobId: 'bad-cron' } }), 404, 'the refused cron job');

  const job = await createManualJob({ name: 'Quick Job', deployment: command('true') });
  const started = await startRun(job.id);
  assert.equal((await waitForRun(job.id, started.id)).status, 'SUCCESS');
  const abort = await client.abort.job.run({ parameters: { projectId, jobId: job.id, runId: started.id } });
  assert.equal(assertApiError(abort, 409, 'abort a finished run').id, 'RUN_CONCLUDED');

  const missing = `no-such-project-${RUN}`;
  const inMissing = await client.create.job.manual({ parameters: { projectId: missing }, data: { name: 'Orphan Job', deployment: command('true') } });
  assert.ok(assertApiError(inMissing, 404, 'a job in a missing project').message.includes(missing), 'the 404 names the project');
  assertApiError(await client.list.jobs({ parameters: { projectId: missing } }), 404, 'list jobs of a missing project');

  const stranger = await newClient({ token: 'slw_pat_' + 'x'.repeat(47) });
  const refused = await stranger.start.job.run({ parameters: { projectId, jobId: job.id }, data: {} });
  assert.equal(assertApiError(refused, 401, 'start a run with a wrong token').id, 'UNAUTHENTICATED');
  // The log tail refuses it in its init answer, which start() rejects with.
  const strangerTail = await stranger.get.job.logTail({ parameters: { projectId, jobId: job.id } });
  const tailErrors = [];
  strangerTail.on('error', (e) => tailErrors.push(e));
  await assert.rejects(strangerTail.start(), /Log tail initialization failed/, 'a log tail with a wrong token');
  assert.ok(tailErrors.length > 0, 'the refused log tail emitted no error event');
});

test('delete a job', async () => {
  const job = await createManualJob({ name: 'Doomed Job', deployment: command('true') });
  assertOk(await client.delete.job({ parameters: { projectId, jobId: job.id } }), 'delete job');
  assertApiError(await client.get.job({ parameters: { projectId, jobId: job.id } }), 404, 'get a deleted job');
  assertApiError(await client.delete.job({ parameters: { projectId, jobId: job.id } }), 404, 'delete twice');
});

test('the cron job fires within a minute and its run succeeds', { timeout: 120_000 }, async () => {
  assert.ok(cronJob, 'the cron job was not created');
  const jobId = cronJob.id;
  // The first tick is at the next minute boundary; allow 15 s more.
  const wait = Math.max(cronCreated + 75_000 - Date.now(), 1_000);
  const run = await poll(async () => {
    const res = await client.get.job.runs({ parameters: { projectId, jobId } });
    assertOk(res, 'get cron runs');
    const first = res.data.runs.at(-1);
    return { done: first?.concluded, value: first };
  }, { timeout: wait, interval: 1_000, what: 'a concluded run of the cron job' });
  assert.equal(run.status, 'SUCCESS', `cron run: ${JSON.stringify(run)}`);
  const lines = await runLogs(jobId, run.id);
  assert.deepEqual(lines.map((l) => l.log), ['tick from cron']);
  assertOk(await client.delete.job({ parameters: { projectId, jobId } }), 'delete the cron job');
});
