// End-to-end tests of Slipway's notification integrations through the
// official @northflank/js-client (list, create, get, update, delete).
//
// The integrations point at a public documentation address (203.0.113.0/24)
// and select events Slipway never emits, so nothing is ever sent: these
// tests exercise the API only (deliveries are e2e/notifications_test.go's).

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ApiClient, ApiClientInMemoryContextProvider } from '@northflank/js-client';

const BASE_URL = (process.env.SLIPWAY_URL ?? '').replace(/\/+$/, '');
const TOKEN = process.env.SLIPWAY_TOKEN || 'slipway-e2e-token';
if (!BASE_URL) {
  throw new Error('SLIPWAY_URL is not set: point it at a running Slipway, e.g. SLIPWAY_URL=http://127.0.0.1:8080');
}
const RUN = randomBytes(4).toString('hex').slice(0, 6);

let client;
before(async () => {
  const contextProvider = new ApiClientInMemoryContextProvider();
  await contextProvider.addContext({ name: 'slipway-e2e', token: TOKEN, host: BASE_URL });
  client = new ApiClient(contextProvider);
});

function assertOk(res, what) {
  assert.equal(res.error, undefined, `${what} failed: ${JSON.stringify(res.error)}`);
  assert.equal(res.rawResponse.status, 200, `${what}: HTTP status`);
}

test('notification integrations: create, list, get, update, delete', async () => {
  const name = `Notify ${RUN}`;
  const id = name.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  const created = await client.create.notification({
    data: {
      name,
      type: 'RAW_WEBHOOK',
      webhook: 'https://203.0.113.10/hooks/slipway',
      secret: 'js-client-secret',
      restricted: true,
      projects: ['some-project'],
      restrictions: { tags: { enabled: false, items: [], matchCondition: 'or' } },
      events: { 'trigger:billing:invoice-paid': true, 'trigger:billing:invoice-carried-over': false },
    },
  });
  assertOk(created, 'create.notification');
  assert.equal(created.data.id, id);
  assert.equal(created.data.type, 'RAW_WEBHOOK');
  assert.equal(created.data.webhook, 'https://203.0.113.10/hooks/slipway');
  assert.equal(created.data.restricted, true);
  assert.deepEqual(created.data.projects, ['some-project']);
  assert.deepEqual(created.data.events, { 'trigger:billing:invoice-paid': true });
  assert.equal(created.data.status.disabled, false);
  assert.equal(created.data.status.numberOfFailedRequests, 0);
  assert.equal(created.data.secret, undefined, 'the secret is never returned');
  assert.ok(!JSON.stringify(created.data).includes('js-client-secret'));

  const again = await client.create.notification({
    data: { name, type: 'DISCORD', webhook: 'https://203.0.113.10/x', events: {} },
  });
  assert.equal(again.error?.status, 409, `a second ${id}: ${JSON.stringify(again.error)}`);

  const list = await client.list.notifications({});
  assertOk(list, 'list.notifications');
  const listed = list.data.notificationIntegrations.find((n) => n.id === id);
  assert.ok(listed, `list.notifications does not show ${id}`);
  assert.equal(listed.name, name);
  assert.ok(listed.createdAt && listed.updatedAt);

  const updated = await client.update.notification({
    parameters: { notificationId: id },
    data: { webhook: 'https://203.0.113.11/other', restricted: false, events: { 'trigger:billing:invoice-paid': false, 'trigger:log-sink:paused': true } },
  });
  assertOk(updated, 'update.notification');

  const got = await client.get.notification({ parameters: { notificationId: id } });
  assertOk(got, 'get.notification');
  assert.equal(got.data.name, name);
  assert.equal(got.data.webhook, 'https://203.0.113.11/other');
  assert.equal(got.data.restricted, false);
  assert.deepEqual(got.data.events, { 'trigger:log-sink:paused': true });

  const bad = await client.update.notification({
    parameters: { notificationId: id },
    data: { events: { 'trigger:no-such:event': true } },
  });
  assert.equal(bad.error?.status, 400);
  assert.match(bad.error.message + JSON.stringify(bad.error.details ?? {}), /trigger:no-such:event/);

  const deleted = await client.delete.notification({ parameters: { notificationId: id } });
  assertOk(deleted, 'delete.notification');
  const gone = await client.get.notification({ parameters: { notificationId: id } });
  assert.equal(gone.error?.status, 404);
});

test('notification integrations: a secret on a type without one, a private URL', async () => {
  const slack = await client.create.notification({
    data: { name: `Slack ${RUN}`, type: 'SLACK', webhook: 'https://203.0.113.10/slack', secret: 'nope', events: {} },
  });
  assert.equal(slack.error?.status, 400);
  assert.match(JSON.stringify(slack.error), /RAW_WEBHOOK/);
  const private_ = await client.create.notification({
    data: { name: `Private ${RUN}`, type: 'RAW_WEBHOOK', webhook: 'http://192.168.1.10/hook', events: {} },
  });
  assert.equal(private_.error?.status, 400);
  assert.match(JSON.stringify(private_.error), /not allow/);
});
