// End-to-end tests of Slipway's services API through the official
// @northflank/js-client, pointed at Slipway by changing only the host.
//
// Run against a running Slipway whose services run as local processes
// (SLIPWAY_RUNTIME_DRIVER=process, which `go test ./e2e/` sets):
//
//	SLIPWAY_URL=http://127.0.0.1:8080 npm test
//
// The tests work in a project of their own run, deleted with its services
// at the end. Waits poll sparingly: the suites share the hourly budget.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
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
  const res = await client.create.project({ data: { name: `E2E ${RUN} Services` } });
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

test('a deployment service runs a command, answers through the ingress, scales and goes', async () => {
  const created = await client.create.service.deployment({
    parameters: { projectId },
    data: {
      name: 'Hello Web',
      billing: { deploymentPlan: 'nf-compute-20' },
      deployment: {
        instances: 1,
        docker: { configType: 'customCommand', customCommand: 'mkdir -p www && echo hello > www/index.html && echo started && busybox httpd -f -p $PORT -h www' },
      },
      ports: [{ name: 'p01', internalPort: 8080, public: true, protocol: 'HTTP' }],
      healthChecks: [{ protocol: 'HTTP', type: 'readinessProbe', path: '/', port: 8080, initialDelaySeconds: 0, periodSeconds: 2, timeoutSeconds: 1, failureThreshold: 3 }],
    },
  });
  assertOk(created, 'create.service.deployment');
  assert.equal(created.data.id, 'hello-web');
  assert.equal(created.data.serviceType, 'deployment');
  const serviceId = created.data.id;

  // The deployment completes; get.service shows it in Northflank's shape.
  const deadline = Date.now() + 30_000;
  let service;
  for (;;) {
    const res = await client.get.service({ parameters: { projectId, serviceId } });
    assertOk(res, 'get.service');
    service = res.data;
    if (service.status.deployment.status === 'COMPLETED') break;
    assert.notEqual(service.status.deployment.status, 'FAILED', `deployment failed: ${JSON.stringify(service.status)}`);
    if (Date.now() > deadline) assert.fail(`not COMPLETED within 30 s: ${JSON.stringify(service.status)}`);
    await sleep(500);
  }
  assert.equal(service.deployment.instances, 1);
  assert.equal(service.ports[0].name, 'p01');

  // get.service.ports shows the ingress URL; the app answers there.
  const ports = await client.get.service.ports({ parameters: { projectId, serviceId } });
  assertOk(ports, 'get.service.ports');
  const url = new URL(ports.data.ports[0].dns);
  assert.equal(url.hostname, `p01--${serviceId}--${projectId}.localhost`);
  // (fetch cannot set Host; a browser resolves *.localhost to loopback.)
  const answer = await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: url.port, path: '/', headers: { host: url.host } }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    }).on('error', reject);
  });
  assert.equal(answer.status, 200);
  assert.equal(answer.body.trim(), 'hello');

  // Containers in Northflank's shape; logs of the instance.
  const containers = await client.get.service.containers({ parameters: { projectId, serviceId } });
  assertOk(containers, 'get.service.containers');
  assert.equal(containers.data.containers.length, 1);
  assert.equal(containers.data.containers[0].status, 'TASK_RUNNING');
  assert.equal(typeof containers.data.containers[0].createdAt, 'number');
  const logs = await client.get.service.logs({ parameters: { projectId, serviceId }, options: { direction: 'forward' } });
  assert.equal(logs.error, undefined, `get.service.logs: ${JSON.stringify(logs.error)}`);
  assert.ok(logs.data.some((l) => l.log === 'started'), `logs ${JSON.stringify(logs.data)}`);

  // Scale within the plan's bounds; above them is a 400 in the envelope.
  assertOk(await client.scale.service({ parameters: { projectId, serviceId }, data: { instances: 2 } }), 'scale.service');
  const tooMany = await client.scale.service({ parameters: { projectId, serviceId }, data: { instances: 100 } });
  assert.equal(tooMany.error?.status, 400, `scale to 100: ${JSON.stringify(tooMany.error)}`);
  const after = await client.get.service.deployment({ parameters: { projectId, serviceId } });
  assertOk(after, 'get.service.deployment');
  assert.equal(after.data.instances, 2);

  // A combined service waits for a build of its branch (CI off: with it
  // on, a new combined service builds its branch at once, and this
  // repository is not on loopback).
  const combined = await client.create.service.combined({
    parameters: { projectId },
    data: {
      name: 'Built App',
      disabledCI: true,
      billing: { deploymentPlan: 'nf-compute-20' },
      deployment: { instances: 1 },
      vcsData: { projectUrl: 'https://github.com/acme/app', projectType: 'github', projectBranch: 'main' },
      buildSettings: { dockerfile: { dockerFilePath: '/Dockerfile', dockerWorkDir: '/' } },
    },
  });
  assertOk(combined, 'create.service.combined');
  assert.equal(combined.data.deployment.internal.buildSHA, 'latest');
  assert.equal(combined.data.deployment.internal.branch, 'main');
  assert.equal(combined.data.status.deployment.status, 'PENDING');

  // A build service; its credentials (a Slipway extension) are never
  // answered, and its build arguments are a sub-resource.
  const builder = await client.create.service.build({
    parameters: { projectId },
    data: {
      name: 'App Builder',
      billing: {},
      vcsData: {
        projectUrl: 'https://git.example.com/acme/app.git', projectType: 'self-hosted',
        credentials: { username: 'bot', password: 'js-s3cret-token' },
      },
      buildSettings: { buildpack: { builder: 'HEROKU_24' } },
      buildArguments: { NODE_ENV: 'production' },
    },
  });
  assertOk(builder, 'create.service.build');
  assert.equal(builder.data.serviceType, 'build');
  assert.equal(builder.data.vcsData.publicRepo, false);
  assert.ok(!JSON.stringify(builder.data).includes('js-s3cret-token'), 'create.service.build answered the credentials');
  const builderGot = await client.get.service({ parameters: { projectId, serviceId: 'app-builder' } });
  assertOk(builderGot, 'get.service (build)');
  assert.ok(!JSON.stringify(builderGot.data).includes('js-s3cret-token'), 'get.service answered the credentials');
  const args = await client.get.service.buildArguments({ parameters: { projectId, serviceId: 'app-builder' } });
  assertOk(args, 'get.service.buildArguments');
  assert.equal(args.data.buildArguments.NODE_ENV, 'production');

  const list = await client.list.services({ parameters: { projectId } });
  assertOk(list, 'list.services');
  assert.deepEqual(list.data.services.map((s) => s.id).sort(), ['app-builder', 'built-app', 'hello-web']);

  assertOk(await client.delete.service({ parameters: { projectId, serviceId } }), 'delete.service');
  const gone = await client.get.service({ parameters: { projectId, serviceId } });
  assert.equal(gone.error?.status, 404);
});
