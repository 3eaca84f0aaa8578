// End-to-end tests of Slipway's addons API through the official
// @northflank/js-client, pointed at Slipway by changing only the host.
//
// Run against a running Slipway whose addons run as local processes
// (SLIPWAY_RUNTIME_DRIVER=process, which `go test ./e2e/` sets), with
// redis-server on the host:
//
//	SLIPWAY_URL=http://127.0.0.1:8080 npm test
//
// The API is rate limited and this suite shares the budget with the
// others, so waits poll sparingly.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiClient, ApiClientInMemoryContextProvider } from '@northflank/js-client';

const BASE_URL = (process.env.SLIPWAY_URL ?? '').replace(/\/+$/, '');
const TOKEN = process.env.SLIPWAY_TOKEN || 'slipway-e2e-token';

if (!BASE_URL) {
  throw new Error('SLIPWAY_URL is not set: point it at a running Slipway, e.g. SLIPWAY_URL=http://127.0.0.1:8080');
}

const RUN = randomBytes(4).toString('hex').slice(0, 6);

let client;
let projectId;

before(async () => {
  const contextProvider = new ApiClientInMemoryContextProvider();
  await contextProvider.addContext({ name: 'slipway-e2e', token: TOKEN, host: BASE_URL });
  client = new ApiClient(contextProvider);
  const res = await client.create.project({ data: { name: `E2E ${RUN} Addons` } });
  assertOk(res, 'create the project');
  projectId = res.data.id;
});

after(async () => {
  if (projectId) {
    // The project's addons go with it (the addons service consumes the
    // project's deletion).
    await client.delete.project({ parameters: { projectId }, options: { delete_child_objects: true } });
  }
});

function assertOk(res, what) {
  assert.equal(res.error, undefined, `${what} failed: ${JSON.stringify(res.error)}`);
  assert.equal(res.rawResponse.status, 200, `${what}: HTTP status`);
  assert.ok(res.data !== undefined && res.data !== null, `${what}: response has no "data"`);
}

function assertApiError(res, status, what) {
  assert.ok(res.error, `${what}: expected HTTP ${status}, got success with ${JSON.stringify(res.data)}`);
  assert.equal(res.error.status, status, `${what}: error.status (error: ${JSON.stringify(res.error)})`);
  return res.error;
}

async function poll(fn, { timeout = 90_000, interval = 500, what }) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const { done, value } = await fn();
    if (done) return value;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeout} ms; last: ${JSON.stringify(value)}`);
    await sleep(interval);
  }
}

async function waitRunning(addonId) {
  return poll(async () => {
    const res = await client.get.addon({ parameters: { projectId, addonId } });
    assertOk(res, `get addon ${addonId}`);
    assert.notEqual(res.data.status, 'failed', `addon failed: ${res.data.statusMessage}`);
    return { done: res.data.status === 'running', value: res.data };
  }, { what: `addon ${addonId} to run` });
}

async function waitBackup(addonId, backupId) {
  return poll(async () => {
    const res = await client.get.addon.backup({ parameters: { projectId, addonId, backupId } });
    assertOk(res, `get backup ${backupId}`);
    const b = res.data;
    return { done: b.status !== 'in-progress' && b.verification?.status !== 'pending', value: b };
  }, { what: `backup ${backupId}` });
}

test('addon types list what this install runs', async () => {
  const res = await client.get.addon.types();
  assertOk(res, 'get addon types');
  const redis = res.data.addonTypes.find((t) => t.type === 'redis');
  assert.ok(redis, `redis is not listed: ${JSON.stringify(res.data.addonTypes.map((t) => t.type))}`);
  assert.ok(redis.versions.length > 0, 'redis has no versions');
  assert.deepEqual(redis.resources.replicas.options, [1]);
  assert.equal(typeof redis.features.backupsDump, 'boolean');
});

test('a Redis addon: credentials, a verified backup, a restore, a download, a schedule, pause and resume', async () => {
  const created = await client.create.addon({
    parameters: { projectId },
    data: { name: `cache-${RUN}`, type: 'redis', version: 'latest', billing: { deploymentPlan: 'nf-compute-20', storage: 1024, replicas: 1 } },
  });
  assertOk(created, 'create addon');
  const addonId = created.data.id;
  assert.equal(created.data.status, 'preDeployment');
  const running = await waitRunning(addonId);
  assert.equal(running.spec.type, 'redis');
  assert.equal(running.spec.config.deployment.replicas, 1);

  const list = await client.list.addons({ parameters: { projectId } });
  assertOk(list, 'list addons');
  assert.ok(list.data.addons.some((a) => a.id === addonId && a.status === 'running'), 'the addon is listed running');

  const creds = await client.get.addon.credentials({ parameters: { projectId, addonId } });
  assertOk(creds, 'credentials');
  assert.equal(typeof creds.data.secrets.PASSWORD, 'string');
  assert.ok(creds.data.envs.HOST.startsWith('/run/slipway/addons/'), `HOST ${creds.data.envs.HOST}`);
  assert.ok(!JSON.stringify(running).includes(creds.data.secrets.PASSWORD), 'the addon shows its password');

  const started = await client.backup.addon({ parameters: { projectId, addonId }, data: { backupType: 'dump', name: 'before' } });
  assertOk(started, 'backup');
  const backup = await waitBackup(addonId, started.data.id);
  assert.equal(backup.status, 'completed');
  assert.equal(backup.verification.status, 'verified', JSON.stringify(backup.verification));
  assert.match(backup.config.size, /^[1-9]\d*$/);

  const backups = await client.get.addon.backups({ parameters: { projectId, addonId } });
  assertOk(backups, 'list backups');
  assert.equal(backups.data.backups[0].id, backup.id);

  const restore = await client.restore.addon.backup({ parameters: { projectId, addonId, backupId: backup.id } });
  assertOk(restore, 'restore');
  assert.equal(typeof restore.data.restoreId, 'string');
  const restored = await poll(async () => {
    const res = await client.get.addon.restores({ parameters: { projectId, addonId } });
    assertOk(res, 'list restores');
    const r = res.data.restores.find((x) => x.id === restore.data.restoreId);
    return { done: r && r.status !== 'in-progress', value: r };
  }, { what: 'the restore' });
  assert.equal(restored.status, 'completed', JSON.stringify(restored));
  assert.equal(restored.backupId, backup.id);
  await waitRunning(addonId);

  const link = await client.get.addon.backup.download({ parameters: { projectId, addonId, backupId: backup.id } });
  assertOk(link, 'download link');
  const file = await fetch(link.data.downloadLink);
  assert.equal(file.status, 200);
  assert.equal(String((await file.arrayBuffer()).byteLength), backup.config.size);

  const badDay = await client.create.addon.backupSchedule({
    parameters: { projectId, addonId },
    data: { scheduling: { interval: 'weekly', minute: [0], hour: [3], day: [7] }, backupType: 'dump', retentionTime: 7 },
  });
  assertApiError(badDay, 400, 'a day out of range');
  const schedule = await client.create.addon.backupSchedule({
    parameters: { projectId, addonId },
    data: { scheduling: { interval: 'weekly', minute: [0], hour: [3], day: [0, 6] }, backupType: 'dump', retentionTime: 7 },
  });
  assertOk(schedule, 'create a schedule');
  const schedules = await client.get.addon.backupSchedules({ parameters: { projectId, addonId } });
  assertOk(schedules, 'list schedules');
  assert.deepEqual(schedules.data.schedules.map((s) => s.scheduling.day), [[0, 6]]);

  assertOk(await client.pause.addon({ parameters: { projectId, addonId } }), 'pause');
  const paused = await client.get.addon({ parameters: { projectId, addonId } });
  assert.equal(paused.data.status, 'paused');
  assertOk(await client.resume.addon({ parameters: { projectId, addonId } }), 'resume');
  await waitRunning(addonId);

  assertOk(await client.delete.addon({ parameters: { projectId, addonId } }), 'delete');
});

test('bad input is a clear 4xx', async () => {
  const unknown = await client.create.addon({
    parameters: { projectId },
    data: { name: `nope-${RUN}`, type: 'mongodb', version: 'latest', billing: { deploymentPlan: 'nf-compute-20', storage: 1024, replicas: 1 } },
  });
  assertApiError(unknown, 400, 'an unknown type');
  const replicas = await client.create.addon({
    parameters: { projectId },
    data: { name: `nope-${RUN}`, type: 'redis', version: 'latest', billing: { deploymentPlan: 'nf-compute-20', storage: 1024, replicas: 3 } },
  });
  assertApiError(replicas, 400, 'replicas outside the plan');
});
