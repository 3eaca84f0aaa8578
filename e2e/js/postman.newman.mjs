// End-to-end test of the Postman collection Slipway serves at
// /v1/postman-collection.json, with Postman's own tooling: the collection
// is loaded with postman-collection (the SDK Postman and newman read
// collections with) and a couple of its requests run with newman against
// the running Slipway.
//
// It is not one of the *.test.mjs files of the JS client suite:
// TestPostmanCollectionWithNewman (e2e/conventions_test.go) runs it alone.
//
//	SLIPWAY_URL=http://127.0.0.1:8080 SLIPWAY_TOKEN=slw_pat_... node --test postman.newman.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import newman from 'newman';
import postmanCollection from 'postman-collection';

const { Collection } = postmanCollection; // a CommonJS module

const BASE_URL = (process.env.SLIPWAY_URL ?? '').replace(/\/+$/, '');
const TOKEN = process.env.SLIPWAY_TOKEN ?? '';
if (!BASE_URL || !TOKEN) {
  throw new Error('set SLIPWAY_URL and SLIPWAY_TOKEN');
}

/** Runs collection (JSON) with newman and resolves to its summary. */
function run(collection) {
  return new Promise((resolve, reject) => {
    newman.run({
      collection,
      // The environment wins over the collection's own variables.
      envVar: [{ key: 'baseUrl', value: BASE_URL }, { key: 'token', value: TOKEN }],
      reporters: [],
      timeoutRequest: 30000,
    }, (err, summary) => (err ? reject(err) : resolve(summary)));
  });
}

/** A test script asserting what a request's answer must be. */
function expect(lines) {
  return [{ listen: 'test', script: { type: 'text/javascript', exec: lines } }];
}

test('the Postman collection loads and its requests run with newman', async () => {
  const res = await fetch(`${BASE_URL}/v1/postman-collection.json`); // no credentials needed
  assert.equal(res.status, 200);
  const collection = new Collection(await res.json());
  assert.equal(collection.name, 'Slipway API');

  // Postman's SDK sees one request per OpenAPI operation.
  const openapi = await (await fetch(`${BASE_URL}/v1/openapi.json`)).json();
  let operations = 0;
  for (const item of Object.values(openapi.paths)) {
    operations += Object.keys(item).filter((m) => ['get', 'post', 'put', 'patch', 'delete'].includes(m)).length;
  }
  let requests = 0;
  collection.forEachItem(() => { requests += 1; });
  assert.equal(requests, operations);

  const list = collection.oneDeep('ProjectsService_ListProjects');
  const create = collection.oneDeep('ProjectsService_CreateProject');
  assert.ok(list && create, 'the collection has ListProjects and CreateProject');
  assert.equal(create.request.method, 'POST');
  assert.equal(create.request.url.getPath(), '/v1/projects');
  assert.doesNotThrow(() => JSON.parse(create.request.body.raw), 'the example body is JSON');

  // Create a project (the example body's placeholders replaced by a real
  // name), then list projects and find it: both through the collection's
  // own requests, authenticated by its collection-level bearer {{token}}.
  const name = `Newman ${randomBytes(3).toString('hex')}`;
  const id = name.toLowerCase().replace(/ /g, '-');
  const createJSON = create.toJSON();
  createJSON.request.body.raw = JSON.stringify({ name, description: 'created by newman' });
  createJSON.event = expect([
    'pm.test("created", () => { pm.response.to.have.status(200);',
    `  pm.expect(pm.response.json().data.id).to.eql(${JSON.stringify(id)}); });`,
  ]);
  const listJSON = list.toJSON();
  listJSON.event = expect([
    'pm.test("listed", () => { pm.response.to.have.status(200);',
    `  pm.expect(pm.response.json().data.projects.map((p) => p.id)).to.include(${JSON.stringify(id)});`,
    '  pm.expect(pm.response.headers.get("Total")).to.eql(String(pm.response.json().pagination.total)); });',
  ]);
  const whole = collection.toJSON();
  const summary = await run({ info: whole.info, auth: whole.auth, variable: whole.variable, item: [createJSON, listJSON] });

  assert.deepEqual(summary.run.failures.map((f) => `${f.source?.name}: ${f.error?.message}`), []);
  const executions = summary.run.executions.map((e) => [e.item.id, e.response?.code]);
  assert.deepEqual(executions, [['ProjectsService_CreateProject', 200], ['ProjectsService_ListProjects', 200]]);
  assert.equal(summary.run.stats.assertions.total, 2);
  assert.equal(summary.run.stats.assertions.failed, 0);

  // Without the token the same request is refused: the collection's auth
  // is what authenticated it.
  const anonymous = await run({ info: whole.info, item: [list.toJSON()] });
  assert.deepEqual(anonymous.run.executions.map((e) => e.response?.code), [401]);
});
