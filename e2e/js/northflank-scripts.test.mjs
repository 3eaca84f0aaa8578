// Scripts written for Northflank, run against Slipway by changing only the
// host: the @northflank/js-client README's example and the fields its
// types send (a team's required billing email, Northflank's region ids).
// Run like the other files of this suite (SLIPWAY_URL, SLIPWAY_TOKEN);
// `go test ./e2e/` starts Slipway with its built-in catalogue for it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ApiClient, ApiClientInMemoryContextProvider, NorthflankApiCallError } from '@northflank/js-client';

const BASE_URL = (process.env.SLIPWAY_URL ?? '').replace(/\/+$/, '');
const TOKEN = process.env.SLIPWAY_TOKEN || 'slipway-e2e-token';
if (!BASE_URL) {
  throw new Error('SLIPWAY_URL is not set: point it at a running Slipway, e.g. SLIPWAY_URL=http://127.0.0.1:8080');
}
const RUN = randomBytes(3).toString('hex');

/** The client exactly as the js-client README sets it up. */
async function readmeClient() {
  const contextProvider = new ApiClientInMemoryContextProvider();
  await contextProvider.addContext({ name: 'slipway', token: TOKEN, host: BASE_URL });
  return new ApiClient(contextProvider, { throwErrorOnHttpErrorCode: true });
}

test('the js-client README example: a project in europe-west', async () => {
  const api = await readmeClient();
  const name = `NF Readme ${RUN}`;
  const { data: project } = await api.create.project({
    data: { name, description: 'A project made by the README example', color: '#EF233C', region: 'europe-west' },
  });
  assert.equal(project.id, `nf-readme-${RUN}`);
  assert.equal(project.region, 'europe-west');
  // Northflank's region ids are other names for this install's cluster.
  const { data: got } = await api.get.project({ parameters: { projectId: project.id } });
  assert.equal(got.region, 'europe-west');
  assert.deepEqual(got.deployment, { region: 'europe-west' });
  assert.equal(got.cluster?.id, 'local');
  const { data: regions } = await api.list.regions({});
  assert.ok(regions.regions.some((r) => r.id === 'europe-west' && r.regionName === 'EMEA'), 'GET /v1/regions lists europe-west');
  await api.delete.project({ parameters: { projectId: project.id } });
  await assert.rejects(api.get.project({ parameters: { projectId: project.id } }),
    (err) => err instanceof NorthflankApiCallError && err.status === 404);
});

test('create.team with its required billing email', async () => {
  const api = await readmeClient();
  const name = `NF Team ${RUN}`;
  const { data: team } = await api.create.team({ data: { name, description: 'made by a Northflank script', email: 'billing@example.com' } });
  assert.equal(team.id, `nf-team-${RUN}`);
  assert.equal(team.name, name);
  assert.equal(team.description, 'made by a Northflank script');
  assert.equal(team.email, 'billing@example.com', 'the email is kept and shown on the team');
  const { data: got } = await api.get.team({ parameters: { teamId: team.id } });
  assert.equal(got.email, 'billing@example.com');

  // Not an email: a 400 naming the field, nothing created.
  const res = await (await readmeClient()).create.team({ data: { name: `NF Bad ${RUN}`, email: 'not an email' } })
    .catch((err) => err);
  assert.ok(res instanceof NorthflankApiCallError, `want a 400, got ${JSON.stringify(res?.data ?? res)}`);
  assert.equal(res.status, 400);
  assert.ok(JSON.stringify(res.details ?? {}).includes('email'), `details ${JSON.stringify(res.details)} should name "email"`);
});

test("Northflank's job and project fields: honoured, or refused naming the field", async () => {
  const api = await readmeClient();
  const { data: project } = await api.create.project({ data: { name: `NF Fields ${RUN}`, clusterId: 'local' } });
  assert.equal(project.region, 'local', 'clusterId places the project on that cluster');
  const projectId = project.id;
  const job = {
    billing: { deploymentPlan: 'nf-compute-20', gpu: { enabled: false } },
    backoffLimit: 0,
    deployment: { docker: { configType: 'customCommand', customCommand: 'true' } },
    runtimeFiles: {},
    healthChecks: [],
  };

  // Fields asking for what Slipway cannot do: a 400 naming the field.
  for (const [field, extra] of [
    ['runtimeFiles', { runtimeFiles: { '/etc/secret': { data: 'eA==', encoding: 'base64' } } }],
    ['stageId', { stageId: 'production' }],
    ['buildFiles', { buildFiles: { '/etc/npmrc': { data: 'eA==', encoding: 'base64' } } }],
    ['deployment.gracePeriodSeconds', { deployment: { ...job.deployment, gracePeriodSeconds: 30 } }],
  ]) {
    const err = await api.create.job.manual({ parameters: { projectId }, data: { ...job, name: `NF Refused ${field.length}`, ...extra } })
      .catch((e) => e);
    assert.ok(err instanceof NorthflankApiCallError, `${field}: want a 400, got ${JSON.stringify(err?.data ?? err)}`);
    assert.equal(err.status, 400, field);
    const said = JSON.stringify(err.details ?? {});
    assert.ok(said.includes(field) && said.includes('not supported by Slipway'), `${field}: details ${said}`);
  }
  const err = await api.create.project({ data: { name: `NF Net ${RUN}`, networking: { allowedIngressProjects: [projectId] } } })
    .catch((e) => e);
  assert.ok(err instanceof NorthflankApiCallError && err.status === 400 && JSON.stringify(err.details).includes('networking'),
    `networking: ${JSON.stringify(err?.details ?? err)}`);

  // Empty values ask for nothing and pass; a cron job's patch suspends it.
  const { data: manual } = await api.create.job.manual({
    parameters: { projectId },
    data: { ...job, name: 'NF Manual', runtimeEnvironment: { GREETING: 'hi' } },
  });
  assert.equal(manual.id, 'nf-manual');
  // GET runtime-environment's show: a Slipway job inherits nothing.
  for (const [show, want] of [['this', { GREETING: 'hi' }], ['all', { GREETING: 'hi' }], ['inherited', {}]]) {
    const { data: env } = await api.get.job.runtimeEnvironment({
      parameters: { projectId, jobId: manual.id }, options: { show, replaceTemplatedValues: 'true' },
    });
    assert.deepEqual(env.runtimeEnvironment, want, `show=${show}`);
  }
  const { data: cron } = await api.create.job.cron({
    parameters: { projectId },
    data: { ...job, name: 'NF Cron', schedule: '0 3 * * *', concurrencyPolicy: 'forbid' },
  });
  const { data: patched } = await api.patch.job.cron({ parameters: { projectId, jobId: cron.id }, data: { suspended: true } });
  assert.equal(patched.suspended, true);
  await api.delete.project({ parameters: { projectId }, options: { delete_child_objects: true } });
});

test("a team's lists take Northflank's per_page and cursor", async () => {
  const api = await readmeClient();
  const first = await api.list.teamRoles({ parameters: { teamId: 'default' }, options: { per_page: 1 } });
  assert.equal(first.data.roles.length, 1, 'per_page=1');
  assert.equal(first.pagination.hasNextPage, true);
  const all = await api.list.teamRoles.all({ parameters: { teamId: 'default' }, options: { per_page: 1 } });
  const ids = all.data.roles.map((r) => r.id);
  assert.ok(ids.length >= 3 && ['admin', 'developer', 'viewer'].every((id) => ids.includes(id)), `all roles page by page: ${ids}`);
  assert.equal(new Set(ids).size, ids.length, 'a role listed twice');
  const teams = await api.list.teams({ options: { per_page: 1 } });
  assert.equal(teams.data.teams.length, 1);
});
