// End-to-end tests of Slipway's projects API through the official
// @northflank/js-client, pointed at Slipway by changing only the host.
//
// Run against a running Slipway:
//
//	SLIPWAY_URL=http://127.0.0.1:8080 npm test
//
// `go test ./e2e/` does that for you (TestJSClient, TestJSClientPostgres):
// it builds and starts Slipway on free ports and runs this suite against it.
//
// Every test uses names of its own (RUN makes them unique per run), so the
// tests are independent of each other and of whatever the database holds.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { ApiClient, ApiClientInMemoryContextProvider, NorthflankApiCallError } from '@northflank/js-client';

const BASE_URL = (process.env.SLIPWAY_URL ?? '').replace(/\/+$/, '');
const TOKEN = process.env.SLIPWAY_TOKEN || 'slipway-e2e-token';

if (!BASE_URL) {
  throw new Error('SLIPWAY_URL is not set: point it at a running Slipway, e.g. SLIPWAY_URL=http://127.0.0.1:8080');
}

// RUN keeps names unique across runs against the same database.
const RUN = randomBytes(4).toString('hex').slice(0, 6);
let counter = 0;

/** A project name unique to this run and call, e.g. "E2E a1b2c3 Create 1". */
function uniqueName(label) {
  counter += 1;
  const name = `E2E ${RUN} ${label} ${counter}`;
  assert.ok(name.length <= 39, `test bug: name ${JSON.stringify(name)} is longer than 39 characters`);
  return name;
}

/** The id Slipway (like Northflank) derives from a name. */
function slugOf(name) {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
}

/** Creates a client whose context points at host (Slipway by default). */
async function newClient({ host = BASE_URL, token = TOKEN, ...opts } = {}) {
  const contextProvider = new ApiClientInMemoryContextProvider();
  await contextProvider.addContext({ name: 'slipway-e2e', token, host });
  return new ApiClient(contextProvider, opts);
}

let client;
let region; // the first region Slipway offers; projects are created in it

before(async () => {
  client = await newClient();
  const res = await client.list.regions({});
  assertOk(res, 'GET /v1/regions');
  assert.ok(res.data.regions.length > 0, 'GET /v1/regions returned no regions');
  region = res.data.regions[0].id;
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
  assert.ok(res.error.id.length > 0, `${what}: error.id is empty`);
  assert.equal(res.data, undefined, `${what}: an error response carries no "data"`);
  return res.error;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function assertTimestamp(value, what) {
  assert.equal(typeof value, 'string', `${what} is not a string: ${JSON.stringify(value)}`);
  assert.match(value, RFC3339, `${what} is not RFC 3339`);
  assert.ok(!Number.isNaN(Date.parse(value)), `${what} does not parse as a date`);
}

function assertOptionalString(obj, key, what) {
  if (key in obj) assert.equal(typeof obj[key], 'string', `${what}.${key} must be a string when present`);
}

/**
 * Checks a project as returned by create/put/patch against the client's
 * CreateProjectResult/PutProjectResult/PatchProjectResult types.
 */
function assertProjectResult(p, { name, description, color }, what) {
  assert.equal(typeof p, 'object', `${what}: project`);
  assert.equal(p.id, slugOf(name), `${what}: id must be the slug of the name`);
  assert.equal(p.name, name, `${what}: name`);
  assert.equal(p.description, description, `${what}: description`);
  assert.equal(p.color, color, `${what}: color`);
  assert.equal(p.region, region, `${what}: region`);
  assertOptionalString(p, 'clusterId', what);
  assertTimestamp(p.createdAt, `${what}: createdAt`);
  assertTimestamp(p.updatedAt, `${what}: updatedAt`);
  assert.ok(Date.parse(p.updatedAt) >= Date.parse(p.createdAt), `${what}: updatedAt before createdAt`);
}

/** Checks a project as returned by get against GetProjectResult. */
function assertGetProjectResult(p, { name, description }, what) {
  assert.equal(p.id, slugOf(name), `${what}: id`);
  assert.equal(p.name, name, `${what}: name`);
  assert.equal(p.description, description, `${what}: description`);
  assert.equal(typeof p.deployment, 'object', `${what}: deployment`);
  assert.equal(p.deployment.region, region, `${what}: deployment.region`);
  assertTimestamp(p.createdAt, `${what}: createdAt`);
  for (const key of ['services', 'jobs', 'addons']) {
    assert.ok(Array.isArray(p[key]), `${what}: ${key} must be an array, got ${JSON.stringify(p[key])}`);
  }
  assert.equal(typeof p.cluster, 'object', `${what}: cluster`);
  assert.equal(typeof p.cluster.id, 'string', `${what}: cluster.id`);
  assert.equal(typeof p.cluster.name, 'string', `${what}: cluster.name`);
  assertOptionalString(p.cluster, 'namespace', `${what}: cluster`);
}

async function createProject(data) {
  const res = await client.create.project({ data: { region, ...data } });
  assertOk(res, `create ${JSON.stringify(data.name)}`);
  return res.data;
}

/** Runs fn over items with at most limit calls in flight. */
async function inBatches(items, limit, fn) {
  for (let i = 0; i < items.length; i += limit) {
    await Promise.all(items.slice(i, i + limit).map(fn));
  }
}

/**
 * A pass-through HTTP proxy in front of Slipway that records the method and
 * path+query of every request, so tests can see exactly what the client
 * sends (e.g. how `.all()` pages).
 */
async function startRecordingProxy(target) {
  const targetUrl = new URL(target);
  const requests = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method, url: req.url });
    const upstream = http.request(
      { host: targetUrl.hostname, port: targetUrl.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', (err) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(String(err));
    });
    req.pipe(upstream);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

// ------------------------------------------------------------------ tests

test('create a project returns every field in the documented shape', async () => {
  const name = uniqueName('Create');
  const want = { name, description: 'created by the e2e suite', color: '#EF233C' };
  const res = await client.create.project({ data: { ...want, region } });
  assertOk(res, 'create');
  assert.equal(res.pagination, undefined, 'a single object has no pagination');
  assertProjectResult(res.data, want, 'create');
  assert.equal(res.data.createdAt, res.data.updatedAt, 'a new project: updatedAt equals createdAt');
  const age = Date.now() - Date.parse(res.data.createdAt);
  assert.ok(age > -60_000 && age < 60_000, `createdAt ${res.data.createdAt} is not about now`);
});

test('create without a region uses a default region', async () => {
  const name = uniqueName('Noregion');
  const res = await client.create.project({ data: { name } });
  assertOk(res, 'create without region');
  assert.equal(res.data.id, slugOf(name));
  assert.equal(typeof res.data.region, 'string');
  assert.ok(res.data.region.length > 0, 'region is empty');
});

test('get a project returns its deployment region and empty resource arrays', async () => {
  const name = uniqueName('Get');
  const created = await createProject({ name, description: 'to be read back' });
  const res = await client.get.project({ parameters: { projectId: created.id } });
  assertOk(res, 'get');
  assertGetProjectResult(res.data, { name, description: 'to be read back' }, 'get');
  assert.deepEqual(res.data.services, []);
  assert.deepEqual(res.data.jobs, []);
  assert.deepEqual(res.data.addons, []);
  assert.equal(res.data.createdAt, created.createdAt, 'get: createdAt differs from create');
});

test('list .all() walks every page by cursor, each project exactly once', { timeout: 120_000 }, async () => {
  const prefix = `E2E ${RUN} Page`;
  const N = 120;
  const names = Array.from({ length: N }, (_, i) => `${prefix} ${String(i).padStart(3, '0')}`);
  await inBatches(names, 10, (name) => createProject({ name }));
  const ours = new Set(names.map(slugOf));

  const checkAll = (projects, what) => {
    assert.ok(Array.isArray(projects), `${what}: data.projects must be an array`);
    const ids = projects.map((p) => p.id);
    const dupes = ids.filter((id, i) => ids.indexOf(id) !== i);
    assert.deepEqual(dupes, [], `${what}: duplicate projects across pages`);
    const seen = ids.filter((id) => ours.has(id));
    const missing = [...ours].filter((id) => !ids.includes(id));
    assert.deepEqual(missing, [], `${what}: projects missing`);
    assert.equal(seen.length, N, `${what}: our projects`);
    for (const p of projects) {
      assert.equal(typeof p.id, 'string', `${what}: id`);
      assert.equal(typeof p.name, 'string', `${what}: name`);
      assertOptionalString(p, 'description', what);
    }
    return ids.length;
  };

  // What the client sends: record every request through a proxy.
  const proxy = await startRecordingProxy(BASE_URL);
  try {
    const viaProxy = await newClient({ host: proxy.url });
    for (const perPage of [7, undefined]) {
      proxy.requests.length = 0;
      const opts = perPage === undefined ? {} : { options: { per_page: perPage } };
      const what = `.all(${JSON.stringify(opts)})`;
      const res = await viaProxy.list.projects.all(opts);
      assert.equal(res.error, undefined, `${what} failed: ${JSON.stringify(res.error)}`);
      const total = checkAll(res.data.projects, what);

      const size = perPage ?? 50; // the API's default page size
      const pages = Math.ceil(total / size);
      assert.ok(pages > 1, `${what}: test bug, ${total} projects fit on one page`);
      assert.equal(proxy.requests.length, pages, `${what}: requests sent: ${JSON.stringify(proxy.requests)}`);
      proxy.requests.forEach((r, i) => {
        const u = new URL(r.url, 'http://x');
        assert.equal(r.method, 'GET');
        assert.equal(u.pathname, '/v1/projects');
        assert.equal(u.searchParams.get('per_page'), perPage === undefined ? null : String(perPage), `${what}: request ${i} per_page`);
        if (i === 0) assert.equal(u.searchParams.get('cursor'), null, `${what}: first request has no cursor`);
        else assert.ok(u.searchParams.get('cursor'), `${what}: request ${i} has no cursor: ${r.url}`);
      });
    }
  } finally {
    await proxy.close();
  }

  // The same walk by hand: every page's pagination block, and getNextPage.
  let page = await client.list.projects({ options: { per_page: 25 } });
  const walked = [];
  for (let n = 1; ; n++) {
    assertOk(page, `page ${n}`);
    const pg = page.pagination;
    assert.equal(typeof pg, 'object', `page ${n}: pagination`);
    assert.equal(typeof pg.hasNextPage, 'boolean', `page ${n}: hasNextPage`);
    assert.equal(pg.count, page.data.projects.length, `page ${n}: count`);
    assert.ok(pg.count <= 25, `page ${n}: more than per_page results`);
    walked.push(...page.data.projects);
    if (!pg.hasNextPage) {
      assert.equal(pg.cursor, undefined, `page ${n}: the last page has no cursor`);
      break;
    }
    assert.equal(typeof pg.cursor, 'string', `page ${n}: cursor`);
    assert.equal(pg.count, 25, `page ${n}: a page before the last is full`);
    assert.ok(n < 100, 'more than 100 pages: the cursor does not advance');
    page = await page.pagination.getNextPage();
  }
  checkAll(walked, 'manual walk');
});

test('list with per_page returns one page with a cursor', async () => {
  await createProject({ name: uniqueName('Pg1') });
  await createProject({ name: uniqueName('Pg2') });
  const res = await client.list.projects({ options: { per_page: 1 } });
  assertOk(res, 'list per_page=1');
  assert.equal(res.data.projects.length, 1);
  assert.deepEqual(
    { hasNextPage: res.pagination.hasNextPage, count: res.pagination.count, cursorType: typeof res.pagination.cursor },
    { hasNextPage: true, count: 1, cursorType: 'string' },
  );
  const next = await res.pagination.getNextPage();
  assertOk(next, 'getNextPage');
  assert.equal(next.data.projects.length, 1);
  assert.notEqual(next.data.projects[0].id, res.data.projects[0].id, 'the next page repeats the first');
});

test('patch a project updates description and color only', async () => {
  const name = uniqueName('Patch');
  const created = await createProject({ name, description: 'before', color: '#111111' });
  const res = await client.patch.project({
    parameters: { projectId: created.id },
    data: { description: 'after', color: '#222222' },
  });
  assertOk(res, 'patch');
  assertProjectResult(res.data, { name, description: 'after', color: '#222222' }, 'patch');
  assert.equal(res.data.createdAt, created.createdAt, 'patch changed createdAt');
  assert.ok(Date.parse(res.data.updatedAt) >= Date.parse(created.updatedAt), 'patch moved updatedAt backwards');

  // Only the fields sent change.
  const onlyColor = await client.patch.project({ parameters: { projectId: created.id }, data: { color: '#333333' } });
  assertOk(onlyColor, 'patch color only');
  assert.equal(onlyColor.data.description, 'after', 'patching color cleared the description');
  assert.equal(onlyColor.data.color, '#333333');

  const got = await client.get.project({ parameters: { projectId: created.id } });
  assertOk(got, 'get after patch');
  assert.equal(got.data.description, 'after', 'get after patch: description');
});

test('patch a missing project is a 404', async () => {
  const res = await client.patch.project({
    parameters: { projectId: slugOf(uniqueName('Nopatch')) },
    data: { description: 'x' },
  });
  assertApiError(res, 404, 'patch missing');
});

test('put creates by name, is idempotent, then updates', async () => {
  const name = uniqueName('Put');
  const data = { name, description: 'put v1', color: '#0000FF', region };
  const first = await client.put.project({ data });
  assertOk(first, 'put (create)');
  assertProjectResult(first.data, data, 'put (create)');

  // Let the clock move on, so that a changed updatedAt cannot hide.
  await new Promise((resolve) => setTimeout(resolve, 5));
  const second = await client.put.project({ data });
  assertOk(second, 'put (identical)');
  assertProjectResult(second.data, data, 'put (identical)');
  assert.equal(second.data.createdAt, first.data.createdAt, 'put (identical): createdAt changed');
  // An identical PUT is a no-op: same object, updatedAt included.
  assert.deepEqual(second.data, first.data, 'put (identical) must return the same object');

  const third = await client.put.project({ data: { ...data, description: 'put v2' } });
  assertOk(third, 'put (update)');
  assertProjectResult(third.data, { ...data, description: 'put v2' }, 'put (update)');
  assert.equal(third.data.createdAt, first.data.createdAt, 'put (update): createdAt changed');

  const got = await client.get.project({ parameters: { projectId: first.data.id } });
  assertOk(got, 'get after put');
  assert.equal(got.data.description, 'put v2');
});

test('delete a project, then get is a 404 in the error envelope', async () => {
  const name = uniqueName('Delete');
  const created = await createProject({ name });
  const del = await client.delete.project({ parameters: { projectId: created.id } });
  assertOk(del, 'delete');

  const res = await client.get.project({ parameters: { projectId: created.id } });
  const err = assertApiError(res, 404, 'get after delete');
  assert.ok(err.message.includes(created.id), `404 message should name the project: ${err.message}`);

  const again = await client.delete.project({ parameters: { projectId: created.id } });
  assertApiError(again, 404, 'delete twice');

  // The name is free again.
  await createProject({ name });
});

test('delete with delete_child_objects=true', async () => {
  const created = await createProject({ name: uniqueName('Delchild') });
  const del = await client.delete.project({
    parameters: { projectId: created.id },
    options: { delete_child_objects: true },
  });
  assertOk(del, 'delete ?delete_child_objects=true');
  assertApiError(await client.get.project({ parameters: { projectId: created.id } }), 404, 'get after delete');
});

test('with throwErrorOnHttpErrorCode a 404 throws NorthflankApiCallError', async () => {
  const throwing = await newClient({ throwErrorOnHttpErrorCode: true });
  const projectId = slugOf(uniqueName('Missing'));
  await assert.rejects(
    throwing.get.project({ parameters: { projectId } }),
    (err) => {
      assert.ok(err instanceof NorthflankApiCallError, `expected NorthflankApiCallError, got ${err}`);
      assert.equal(err.status, 404);
      assert.equal(typeof err.id, 'string');
      assert.ok(err.message.length > 0);
      return true;
    },
  );
});

test('duplicate create is a 409', async () => {
  const name = uniqueName('Dup');
  await createProject({ name });
  const res = await client.create.project({ data: { name, region } });
  const err = assertApiError(res, 409, 'duplicate create');
  assert.ok(err.message.includes(slugOf(name)), `409 message should name the project: ${err.message}`);

  // A different name with the same slug is the same project id, so also 409.
  const sameSlug = await client.create.project({ data: { name: name.toLowerCase().replaceAll(' ', '-'), region } });
  assertApiError(sameSlug, 409, 'create with an equal slug');
});

test('bad input is a 400 whose details name the field', async () => {
  const tooShort = await client.create.project({ data: { name: 'ab', region } });
  const err = assertApiError(tooShort, 400, 'name too short');
  assert.equal(typeof err.details, 'object', `details: ${JSON.stringify(err)}`);
  assert.ok(err.details && 'name' in err.details, `details should name "name": ${JSON.stringify(err.details)}`);
  assert.ok(Array.isArray(err.details.name) && err.details.name.length > 0, 'details.name lists the problems');
  for (const msg of err.details.name) assert.equal(typeof msg, 'string');

  const tooLong = await client.create.project({ data: { name: 'x'.repeat(40), region } });
  assert.ok('name' in (assertApiError(tooLong, 400, 'name too long').details ?? {}), 'details should name "name"');

  const badRegion = await client.create.project({ data: { name: uniqueName('Badregion'), region: 'no-such-region' } });
  assert.ok('region' in (assertApiError(badRegion, 400, 'unknown region').details ?? {}), 'details should name "region"');

  // A rejected create leaves nothing behind.
  const got = await client.get.project({ parameters: { projectId: 'ab' } });
  assertApiError(got, 404, 'get rejected project');
});

test('list regions', async () => {
  const res = await client.list.regions({});
  assertOk(res, 'regions');
  assert.ok(Array.isArray(res.data.regions) && res.data.regions.length > 0, 'regions is empty');
  for (const r of res.data.regions) {
    for (const key of ['id', 'name', 'regionName']) {
      assert.equal(typeof r[key], 'string', `region.${key}: ${JSON.stringify(r)}`);
      assert.ok(r[key].length > 0, `region.${key} is empty`);
    }
    assert.ok(Array.isArray(r.gpuDevices), `region.gpuDevices: ${JSON.stringify(r)}`);
  }
  const ids = res.data.regions.map((r) => r.id);
  assert.equal(new Set(ids).size, ids.length, 'duplicate region ids');
});

test('list plans', async () => {
  const res = await client.list.plans({});
  assertOk(res, 'plans');
  assert.ok(Array.isArray(res.data.plans) && res.data.plans.length > 0, 'plans is empty');
  for (const p of res.data.plans) {
    for (const key of ['id', 'name', 'currency']) {
      assert.equal(typeof p[key], 'string', `plan.${key}: ${JSON.stringify(p)}`);
      assert.ok(p[key].length > 0, `plan.${key} is empty`);
    }
    for (const key of ['amountPerMonth', 'amountPerHour', 'cpuResource', 'ramResource']) {
      assert.equal(typeof p[key], 'number', `plan.${key}: ${JSON.stringify(p)}`);
      assert.ok(p[key] >= 0, `plan.${key} is negative`);
    }
    assert.ok(p.cpuResource > 0 && p.ramResource > 0, `plan ${p.id} has no resources`);
  }
  const ids = res.data.plans.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'duplicate plan ids');
});

test('a wrong token is refused with 401 through the client error object', async () => {
  const stranger = await newClient({ token: 'slw_pat_' + 'x'.repeat(47) });
  const res = await stranger.list.projects({});
  assertApiError(res, 401, 'list with a wrong token');
  assert.equal(res.error.id, 'UNAUTHENTICATED');
  assert.ok(res.rawResponse.headers.get('www-authenticate'), '401 without WWW-Authenticate');
  const created = await stranger.create.project({ data: { name: uniqueName('Stranger') } });
  assertApiError(created, 401, 'create with a wrong token');
});
