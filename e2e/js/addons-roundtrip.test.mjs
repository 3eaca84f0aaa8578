// End-to-end tests of Slipway's addons and secret groups through the
// official @northflank/js-client, pointed at Slipway by changing only the
// host: for every addon type, a database is created, linked into a secret
// group, written by a job that connects with the injected values, backed
// up (and the backup verified by restoring it into a throwaway instance),
// damaged, restored, and read back by another job run.
//
// Run against a running Slipway whose workloads run as local processes
// (SLIPWAY_RUNTIME_DRIVER=process, which `go test ./e2e/` sets):
//
//	SLIPWAY_URL=http://127.0.0.1:8080 npm test
//
// The tests work in a project of their own run, deleted with everything in
// it at the end. Waits poll sparingly: the suites share the hourly budget.

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
  const res = await client.create.project({ data: { name: `E2E ${RUN} Addon Round Trip` } });
  assertOk(res, 'create the project');
  projectId = res.data.id;
});

after(async () => {
  if (projectId) {
    await client.delete.project({ parameters: { projectId }, options: { delete_child_objects: true } });
  }
});

function assertOk(res, what) {
  assert.equal(res.error, undefined, `${what} failed: ${JSON.stringify(res.error)}`);
  assert.equal(res.rawResponse.status, 200, `${what}: HTTP status`);
}

function assertApiError(res, status, what) {
  assert.ok(res.error, `${what}: expected HTTP ${status}, got success with ${JSON.stringify(res.data)}`);
  assert.equal(res.error.status, status, `${what}: error.status (error: ${JSON.stringify(res.error)})`);
  assert.equal(typeof res.error.message, 'string', `${what}: error.message`);
  return res.error;
}

/** Calls fn every interval ms until it returns {done: true}, and returns its value. */
async function poll(fn, { timeout, interval, what }) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const last = await fn();
    if (last.done) return last.value;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeout} ms; last: ${JSON.stringify(last.value)}`);
    await sleep(interval);
  }
}

async function waitForAddon(addonId, status) {
  return poll(async () => {
    const res = await client.get.addon({ parameters: { projectId, addonId } });
    assertOk(res, `get addon ${addonId}`);
    if (res.data.status === 'failed') assert.fail(`addon ${addonId} failed: ${JSON.stringify(res.data)}`);
    return { done: res.data.status === status, value: res.data };
  }, { timeout: 90_000, interval: 1_000, what: `addon ${addonId} to be ${status}` });
}

async function waitForBackup(addonId, backupId) {
  return poll(async () => {
    const res = await client.get.addon.backup({ parameters: { projectId, addonId, backupId } });
    assertOk(res, `get backup ${backupId}`);
    const b = res.data;
    const verified = b.verification && b.verification.status !== 'pending';
    return { done: ['failed', 'aborted'].includes(b.status) || (b.status === 'completed' && verified), value: b };
  }, { timeout: 120_000, interval: 1_000, what: `backup ${backupId} to complete and be verified` });
}

async function waitForRestore(addonId, restoreId) {
  return poll(async () => {
    const res = await client.get.addon.restores({ parameters: { projectId, addonId } });
    assertOk(res, `list restores of ${addonId}`);
    const r = res.data.restores.find((x) => x.id === restoreId);
    return { done: r && ['completed', 'failed', 'aborted'].includes(r.status), value: r ?? res.data };
  }, { timeout: 120_000, interval: 1_000, what: `restore ${restoreId} to end` });
}

/** Runs command once as a manual job's run and returns its log text. */
async function runOnce(jobId, command) {
  const upd = await client.patch.job.manual({
    parameters: { projectId, jobId },
    data: { deployment: { docker: { configType: 'customCommand', customCommand: command } } },
  });
  assertOk(upd, `set the command of ${jobId}`);
  const started = await client.start.job.run({ parameters: { projectId, jobId }, data: {} });
  assertOk(started, `start a run of ${jobId}`);
  const run = await poll(async () => {
    const res = await client.get.job.run({ parameters: { projectId, jobId, runId: started.data.id } });
    assertOk(res, 'get run');
    return { done: res.data.concluded, value: res.data };
  }, { timeout: 60_000, interval: 500, what: `run of ${jobId}` });
  const logs = await client.get.job.logs({ parameters: { projectId, jobId }, options: { runId: started.data.id, direction: 'forward' } });
  assertOk(logs, 'job logs');
  const text = logs.data.map((l) => l.log).join('\n');
  assert.equal(run.status, 'SUCCESS', `run of ${command}: ${JSON.stringify(run)}\n${text}`);
  return text;
}

// Each type: the keys the secret group links (under aliases the job's
// commands use), and shell commands that write, damage and count its data.
// The addons' credentials point at the socket directory mounted into
// linked workloads (services/addons/engine Credentials): psql takes the
// URI (host= is the socket directory); redis-cli takes no unix:// URI, so
// it gets the socket path and the password through REDISCLI_AUTH; the
// mariadb client takes no URI, so it gets the socket, user and database,
// and the password through MYSQL_PWD.
const TYPES = {
  postgresql: {
    link: [{ keyName: 'POSTGRES_URI', aliases: ['DATABASE_URL'] }],
    write: 'psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -c "create table orders(id int primary key); insert into orders select generate_series(1, 250)"',
    damage: 'psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -c "drop table orders"',
    count: 'psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -tAc "select count(*) from orders"',
    want: '250',
  },
  redis: {
    link: [{ keyName: 'SOCKET', aliases: ['REDIS_SOCKET'] }, { keyName: 'PASSWORD', aliases: ['REDISCLI_AUTH'] }],
    write: 'for i in $(seq 1 40); do redis-cli -s "$REDIS_SOCKET" set key$i $i >/dev/null || exit 1; done; redis-cli -s "$REDIS_SOCKET" dbsize',
    damage: 'test "$(redis-cli -s "$REDIS_SOCKET" flushall)" = OK',
    count: 'redis-cli -s "$REDIS_SOCKET" dbsize',
    want: '40',
  },
  mysql: {
    link: [
      { keyName: 'SOCKET', aliases: ['MYSQL_UNIX_PORT'] }, { keyName: 'PASSWORD', aliases: ['MYSQL_PWD'] },
      { keyName: 'USERNAME', aliases: ['DB_USER'] }, { keyName: 'DATABASE', aliases: ['DB_NAME'] },
    ],
    write: 'mariadb --no-defaults -S "$MYSQL_UNIX_PORT" -u "$DB_USER" "$DB_NAME" -e "create table orders(id int primary key); insert into orders select seq from seq_1_to_250"',
    damage: 'mariadb --no-defaults -S "$MYSQL_UNIX_PORT" -u "$DB_USER" "$DB_NAME" -e "drop table orders"',
    count: 'mariadb --no-defaults -S "$MYSQL_UNIX_PORT" -u "$DB_USER" "$DB_NAME" -N -e "select count(*) from orders"',
    want: '250',
  },
};

for (const [type, t] of Object.entries(TYPES)) {
  test(`${type}: linked into a job, backed up, verified, damaged and restored`, async () => {
    const types = await client.get.addon.types({});
    assertOk(types, 'addon types');
    const info = types.data.addonTypes.find((x) => x.type === type);
    assert.ok(info, `addon types lack ${type}: ${JSON.stringify(types.data)}`);
    assert.ok(info.versions.length > 0, `${type} has no versions`);

    const created = await client.create.addon({
      parameters: { projectId },
      data: {
        name: `${type} db`, type, version: 'latest',
        billing: { deploymentPlan: 'nf-compute-20', storage: 1024, replicas: 1 },
      },
    });
    assertOk(created, `create a ${type} addon`);
    const addonId = created.data.id;
    await waitForAddon(addonId, 'running');

    const creds = await client.get.addon.credentials({ parameters: { projectId, addonId } });
    assertOk(creds, 'credentials');
    assert.ok(creds.data.secrets && creds.data.envs, `credentials: ${Object.keys(creds.data)}`);

    const group = await client.create.secret({
      parameters: { projectId },
      data: {
        name: `${type} link`, secretType: 'environment', priority: 10,
        addonDependencies: [{ addonId, keys: t.link }],
      },
    });
    assertOk(group, 'create the secret group');

    const job = await client.create.job.manual({
      parameters: { projectId },
      data: { name: `${type} client`, backoffLimit: 0, deployment: { docker: { configType: 'customCommand', customCommand: 'true' } } },
    });
    assertOk(job, 'create the job');
    const jobId = job.data.id;

    await runOnce(jobId, t.write);
    assert.match(await runOnce(jobId, t.count), new RegExp(`^${t.want}$`, 'm'));

    const backup = await client.backup.addon({ parameters: { projectId, addonId }, data: { name: 'before damage', backupType: 'dump' } });
    assertOk(backup, 'start a dump backup');
    const done = await waitForBackup(addonId, backup.data.id);
    assert.equal(done.status, 'completed', `backup: ${JSON.stringify(done)}`);
    assert.equal(done.verification.status, 'verified', `verification: ${JSON.stringify(done.verification)}`);
    assert.ok(Number(done.config.size) > 0, `backup size ${done.config.size}`);

    await runOnce(jobId, t.damage);

    const restore = await client.restore.addon.backup({ parameters: { projectId, addonId, backupId: backup.data.id } });
    assertOk(restore, 'restore');
    assert.equal(typeof restore.data.restoreId, 'string');
    const restored = await waitForRestore(addonId, restore.data.restoreId);
    assert.equal(restored.status, 'completed', `restore: ${JSON.stringify(restored)}`);
    await waitForAddon(addonId, 'running');

    assert.match(await runOnce(jobId, t.count), new RegExp(`^${t.want}$`, 'm'));
  });
}

test('bad input: unknown type and version, hourly schedule with hours, a day out of range', async () => {
  const base = { billing: { deploymentPlan: 'nf-compute-20', storage: 1024, replicas: 1 } };
  assertApiError(await client.create.addon({ parameters: { projectId }, data: { ...base, name: 'nope', type: 'oracle', version: 'latest' } }), 400, 'unknown type');
  assertApiError(await client.create.addon({ parameters: { projectId }, data: { ...base, name: 'nope', type: 'postgresql', version: '2.0' } }), 400, 'unknown version');
  assertApiError(await client.create.addon({
    parameters: { projectId },
    data: { ...base, name: 'nope', type: 'redis', version: 'latest', backupSchedules: [{ scheduling: { interval: 'hourly', minute: [0], hour: [3] }, backupType: 'dump', retentionTime: 1 }] },
  }), 400, 'an hour on an hourly schedule');
  assertApiError(await client.create.addon({
    parameters: { projectId },
    data: { ...base, name: 'nope', type: 'redis', version: 'latest', backupSchedules: [{ scheduling: { interval: 'weekly', minute: [0], hour: [3], day: [7] }, backupType: 'dump', retentionTime: 1 }] },
  }), 400, 'a day out of range');
});
