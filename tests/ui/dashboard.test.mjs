// End-to-end tests of the dashboard in a real browser: Debian's chromium, headless, driven by
// playwright-core, against a live gsched-scheduler (127.0.0.1, port 0, temp data dir) with two
// processes of simulated workers (two sites, two GPU types).
//
//   node tests/ui/dashboard.test.mjs --scheduler BIN --worker BIN --out DIR [--node-modules DIR]
//
// Covers: sign-in (a bad token refused, then the admin's), the cluster heat map, a job followed
// from pending (with its reason read on the page) through running to completed without a reload,
// draining a node as admin, a user token that shows only what the API shows that user, and a page
// whose scheduler turned standby moving to the leader.
// Screenshots land in --out. Every wait is on a condition with a deadline; the whole run has one
// too. Exit codes: 0 passed, 1 failed, 77 skipped (no chromium or no playwright-core).

import {spawn} from 'node:child_process';
import fs from 'node:fs';
import http_ from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {fileURLToPath, pathToFileURL} from 'node:url';

const kSkip = 77;
const kRunDeadlineMs = 240_000;
const kWaitMs = 30_000;

// ---- Arguments and prerequisites -------------------------------------------------------------

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const schedulerBin = arg('scheduler', path.join(repo, 'build/bin/gsched-scheduler'));
const workerBin = arg('worker', path.join(repo, 'build/bin/gsched-worker'));
const outDir = path.resolve(arg('out', path.join(repo, 'build/ui-test-artifacts')));
const nodeModules = arg('node-modules', path.join(repo, 'node_modules'));
const chromiumPath = process.env.GSCHED_CHROMIUM || '/usr/bin/chromium';

function skip(why) {
  console.log(`SKIP: ${why}`);
  process.exit(kSkip);
}
if (!fs.existsSync(chromiumPath)) skip(`no chromium at ${chromiumPath} (scripts/setup installs it)`);
const pwEntry = path.join(nodeModules, 'playwright-core', 'index.mjs');
if (!fs.existsSync(pwEntry)) skip(`no playwright-core in ${nodeModules} (scripts/setup installs it)`);
for (const bin of [schedulerBin, workerBin]) {
  if (!fs.existsSync(bin)) {
    console.error(`FAIL: missing ${bin}`);
    process.exit(1);
  }
}
const {chromium} = await import(pathToFileURL(pwEntry).href);

// ---- Small helpers -----------------------------------------------------------------------------

async function waitFor(what, fn, timeoutMs = kWaitMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (let delay = 20; ; delay = Math.min(250, delay * 2)) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

const children = [];
function startProcess(bin, args, logFile) {
  const log = fs.openSync(logFile, 'a');
  const child = spawn(bin, args, {stdio: ['ignore', log, log]});
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({code, signal})));
  children.push(child);
  return child;
}
async function stopAll() {
  for (const c of children.reverse()) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    const timeout = new Promise((r) => setTimeout(() => r('timeout'), 10_000));
    if ((await Promise.race([c.exited, timeout])) === 'timeout') c.kill('SIGKILL');
  }
}

// ---- The cluster -----------------------------------------------------------------------------

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'gsched-ui-'));
fs.mkdirSync(outDir, {recursive: true});
for (const f of fs.readdirSync(outDir)) {
  if (f.endsWith('.png') || f.endsWith('.log')) fs.rmSync(path.join(outDir, f));
}

let base = '';
let adminToken = '';
async function http(method, p, token, body) {
  const res = await fetch(base + p, {
    method,
    headers: {Authorization: `Bearer ${token}`, 'Content-Type': 'application/json'},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}
const apiGet = (p, token = adminToken) => http('GET', p, token);
const apiPost = (p, body, token = adminToken) => http('POST', p, token, body);

async function startCluster() {
  fs.writeFileSync(path.join(work, 'accounts.yaml'), `accounts:
  - name: lab
    shares: 2
    quotas:
      h100: {guaranteed: 8, limit: 16}
  - name: proj-a
    parent: lab
    shares: 3
    quotas:
      h100: {guaranteed: 4, limit: 16}
  - name: proj-b
    parent: lab
    shares: 1
  - name: other
    shares: 1
`);
  fs.writeFileSync(path.join(work, 'scheduler.yaml'),
                   'listen: 127.0.0.1:0\ndata_dir: data\naccounts_file: accounts.yaml\n' +
                   'log_level: info\nscheduling:\n  interval: 100ms\n');
  const addrFile = path.join(work, 'data', 'scheduler.addr');
  startProcess(schedulerBin, ['--config', path.join(work, 'scheduler.yaml')], path.join(work, 'scheduler.log'));
  await waitFor('the scheduler to write its address', () =>
    fs.existsSync(addrFile) && fs.readFileSync(addrFile, 'utf8').trim());
  base = fs.readFileSync(addrFile, 'utf8').trim();
  adminToken = fs.readFileSync(path.join(work, 'data', 'admin.token'), 'utf8').trim();

  const worker = await apiPost('/v1/tokens', {user: 'sim', role: 'worker', accounts: [],
                                                nodes: ['dj-*', 'bs-*']});
  fs.writeFileSync(path.join(work, 'worker.token'), worker.token);
  // Two sites: two 8 x h100 nodes in daejeon/b01, two 4 x h200 nodes in busan/b07.
  const fleets = [
    {name: 'dj', site: 'daejeon', block: 'b01', count: 8, type: 'h100'},
    {name: 'bs', site: 'busan', block: 'b07', count: 4, type: 'h200'},
  ];
  for (const f of fleets) {
    const yaml = path.join(work, `worker-${f.name}.yaml`);
    fs.writeFileSync(yaml, `scheduler: ${base}\ntoken_file: ${path.join(work, 'worker.token')}\n` +
                           `name: ${f.name}\nsite: ${f.site}\nblock: ${f.block}\n` +
                           `work_dir: ${path.join(work, `work-${f.name}`)}\nheartbeat_interval: 2s\n` +
                           `gpus:\n  discovery: fake\n  fake: {count: ${f.count}, type: ${f.type}}\n`);
    startProcess(workerBin, ['--config', yaml, '--simulate', '2', '--log-level', 'warn'],
                 path.join(work, `worker-${f.name}.log`));
  }
  await waitFor('four nodes up', async () => {
    const r = await apiGet('/v1/nodes');
    return r.nodes.length === 4 && r.nodes.every((n) => n.state === 'up');
  });
}

// A fake standby scheduler on 127.0.0.1: the dashboard's files from ui/, and 503 with the leader
// (header and error body) for everything under /v1/.
async function startFakeStandby(leader) {
  const types = {'.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css',
                 '.svg': 'image/svg+xml'};
  let apiCalls = 0;
  const server = http_.createServer((req, res) => {
    const p = new URL(req.url, 'http://x').pathname;
    if (p.startsWith('/v1/')) {
      apiCalls++;
      res.writeHead(503, {'Content-Type': 'application/json', 'X-Gsched-Leader': leader});
      res.end(JSON.stringify({error: {code: 'unavailable', leader,
                                      message: `this scheduler is a standby; the leader is ${leader}`}}));
      return;
    }
    const rel = p === '/ui' || p === '/ui/' ? 'index.html' : p.replace(/^\/ui\//, '');
    const file = path.join(repo, 'ui', path.normalize(rel));
    if (!p.startsWith('/ui') || !file.startsWith(path.join(repo, 'ui')) || !fs.existsSync(file)) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, {'Content-Type': types[path.extname(file)] || 'application/octet-stream'});
    res.end(fs.readFileSync(file));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    apiCalls: () => apiCalls,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

// ---- The tests -------------------------------------------------------------------------------

const results = [];
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({name, ok: true, ms: Date.now() - t0});
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push({name, ok: false, ms: Date.now() - t0, error: e});
    console.log(`FAIL ${name} (${Date.now() - t0} ms)\n     ${e.stack || e}`);
    throw e;
  }
}

async function shot(page, name) {
  await page.screenshot({path: path.join(outDir, `${name}.png`), fullPage: true});
}

async function signIn(page, token) {
  await page.goto(`${base}/ui`);
  await page.getByTestId('token-input').fill(token);
  await page.getByTestId('sign-in').click();
  await page.getByTestId('who').waitFor({state: 'visible'});
  await waitFor('the watch feed to be live', async () =>
    (await page.getByTestId('live').getAttribute('data-state')) === 'live');
}

function watchConsole(page, label) {
  const problems = [];
  page.on('pageerror', (e) => problems.push(`${label}: page error: ${e.message}`));
  // Failed requests are reported with their URL (the console message alone does not name it).
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`${label}: HTTP ${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
      problems.push(`${label}: console: ${m.text()}`);
    }
  });
  return problems;
}

async function run(browser) {
  const admin = await browser.newContext({viewport: {width: 1440, height: 900}});
  const page = await admin.newPage();
  const problems = watchConsole(page, 'admin');
  // Expected failures: the bad token's 401, and the log tail of a simulated node (which keeps no
  // output) answering 404 once.
  const expected = (p) => / 401 GET \/v1\/whoami$/.test(p) || / 404 GET \/v1\/jobs\/\d+\/logs$/.test(p);

  await step('the page and its files are served without a token', async () => {
    const res = await page.goto(`${base}/ui`);
    check(res.status() === 200, `GET /ui: ${res.status()}`);
    check(res.headers()['content-type'].startsWith('text/html'), 'content type of /ui');
    check(await page.getByTestId('signin-form').isVisible(), 'the sign-in form is shown');
  });

  await step('sign in: a bad token is refused, the admin token is taken', async () => {
    await page.getByTestId('token-input').fill('not-a-token');
    await page.getByTestId('sign-in').click();
    await page.getByTestId('signin-error').waitFor({state: 'visible'});
    await signIn(page, adminToken);
    check((await page.getByTestId('who').textContent()).includes('admin'), 'signed in as admin');
    const stored = await page.evaluate(() => [sessionStorage.getItem('gsched.token'), localStorage.length]);
    check(stored[0] === adminToken && stored[1] === 0, 'the token is in sessionStorage only');
  });

  await step('the cluster heat map shows both sites by block and type', async () => {
    await page.goto(`${base}/ui#/cluster`);
    await page.getByTestId('heat-group').first().waitFor();
    const groups = await page.getByTestId('heat-group').evaluateAll((els) =>
      els.map((e) => ({site: e.dataset.site, block: e.dataset.block, type: e.dataset.type, idle: Number(e.dataset.idle)})));
    const key = (g) => `${g.site}/${g.block}/${g.type}`;
    check(groups.map(key).sort().join(',') === 'busan/b07/h200,daejeon/b01/h100', `groups: ${JSON.stringify(groups)}`);
    check(groups.find((g) => g.type === 'h100').idle === 16 && groups.find((g) => g.type === 'h200').idle === 8,
          `idle GPUs: ${JSON.stringify(groups)}`);
    await shot(page, '01-cluster');
  });

  // A job that fills every h100 keeps the next one pending with a reason; cancelling it lets the
  // next one run.
  const blocker = await apiPost('/v1/jobs', {name: 'blocker', account: 'other', image: '/i', command: ['x'],
    nodes: 2, gpus_per_node: 8, gpu_type: 'h100', env: {GSCHED_SIM_DURATION_S: '3600'}});
  await waitFor('the blocker to run', async () => (await apiGet(`/v1/jobs/${blocker.id}`)).state === 'running');
  await page.evaluate(() => { window.gschedNoReload = true; });
  let jobId = 0;

  await step('a submitted job appears in the queue live, with its pending reason', async () => {
    await page.getByRole('link', {name: 'Queue'}).click();
    await page.getByTestId('queue-list').waitFor();
    jobId = (await apiPost('/v1/jobs', {name: 'watch-me', account: 'proj-a', image: '/i', command: ['train'],
      gpus_per_node: 2, gpu_type: 'h100', env: {GSCHED_SIM_DURATION_S: '3'}})).id;
    const row = page.getByTestId(`row-${jobId}`);
    await row.waitFor({timeout: kWaitMs});
    await waitFor('the row to show a pending reason', async () =>
      (await row.getByTestId('state').textContent()).includes('pending') &&
      (await row.getByTestId('reason').count()) > 0);
    const api = await apiGet(`/v1/jobs/${jobId}`);
    check(api.state === 'pending' && api.reason, `API: ${JSON.stringify(api.reason)}`);
    check((await row.getByTestId('reason').textContent()).includes(api.reason.code), 'the row names the reason code');
    await shot(page, '02-queue-pending');
  });

  await step('the job page reads the pending reason', async () => {
    await page.getByTestId(`row-${jobId}`).click();
    await page.getByTestId('pending-reason').waitFor();
    const api = await apiGet(`/v1/jobs/${jobId}`);
    const code = (await page.getByTestId('reason-code').textContent()).trim();
    const message = (await page.getByTestId('reason-message').textContent()).trim();
    check(code === api.reason.code.replace('_', ' '), `reason code on the page: ${code}, API: ${api.reason.code}`);
    check(message.length > 0, 'a reason message');
    check((await page.getByTestId('job-state').getAttribute('data-state')) === 'pending', 'pending');
    await shot(page, '03-job-pending');
  });

  await step('the job goes pending -> running -> completed without a reload', async () => {
    await apiPost(`/v1/jobs/${blocker.id}/cancel`);
    const seen = new Set();
    await waitFor('the job to complete on the page', async () => {
      const s = await page.getByTestId('job-state').getAttribute('data-state');
      if (s === 'running' && !seen.has('running')) {
        seen.add('running');
        await page.getByTestId('allocation').waitFor();
        await shot(page, '04-job-running');
      }
      seen.add(s);
      return s === 'completed';
    }, 60_000);
    check(seen.has('running'), `states seen on the page: ${[...seen]}`);
    const timeline = await page.getByTestId('timeline').textContent();
    for (const t of ['→ starting', '→ running', 'running → completed']) {
      check(timeline.includes(t), `the timeline has "${t}": ${timeline}`);
    }
    check(await page.evaluate(() => window.gschedNoReload === true), 'the page was not reloaded');
    await shot(page, '05-job-completed');
  });

  await step('an admin drains a node from the nodes view', async () => {
    await page.getByRole('link', {name: 'Nodes'}).click();
    const row = page.getByTestId('row-dj-0001');
    await row.getByTestId('drain').click();
    await page.getByTestId('confirm-reason').fill('ui test maintenance');
    await page.getByTestId('confirm-ok').click();
    await waitFor('the node to show as drained', async () =>
      /drain/.test(await row.getByTestId('node-state').textContent()));
    const node = (await apiGet('/v1/nodes')).nodes.find((n) => n.name === 'dj-0001');
    check(/drain/.test(node.state) && node.state_reason === 'ui test maintenance', `API: ${node.state} ${node.state_reason}`);
    await row.getByTestId('resume').waitFor();
    await shot(page, '06-nodes-drained');
    await page.getByRole('link', {name: 'Cluster'}).click();
    await waitFor('the heat map to show 8 drained h100s', async () =>
      (await page.locator('[data-testid="heat-group"][data-type="h100"]').getAttribute('data-drained')) === '8');
    await shot(page, '07-cluster-drained');
  });

  await step('the accounts view shows the tree with quotas and fair share', async () => {
    await page.getByRole('link', {name: 'Accounts'}).click();
    await page.locator('[data-testid="account-row"][data-account="proj-a"]').waitFor();
    const names = await page.getByTestId('account-row').evaluateAll((els) => els.map((e) => e.dataset.account));
    for (const a of ['lab', 'proj-a', 'proj-b', 'other']) check(names.includes(a), `account ${a}: ${names}`);
    check(names.indexOf('proj-a') > names.indexOf('lab'), 'children follow their parent');
    check(await page.locator('[data-account="proj-a"] [data-testid="quota-h100"]').count() === 1, 'proj-a h100 quota');
    await shot(page, '08-accounts');
  });

  const unexpected = problems.filter((p) => !expected(p));
  check(unexpected.length === 0, `browser errors:\n${unexpected.join('\n')}`);
  await admin.close();

  await step('a user sees only what the API lets them see', async () => {
    const alice = (await apiPost('/v1/tokens', {user: 'alice', role: 'user', accounts: ['proj-b']})).token;
    const mine = await apiPost('/v1/jobs', {name: 'alice-job', account: 'proj-b', image: '/i', command: ['x'],
      gpus_per_node: 1, gpu_type: 'h200', env: {GSCHED_SIM_DURATION_S: '3600'}}, alice);
    const ctx = await browser.newContext({viewport: {width: 1440, height: 900}});
    const p = await ctx.newPage();
    const aliceProblems = watchConsole(p, 'alice');
    await signIn(p, alice);
    check((await p.getByTestId('who').textContent()).includes('alice · user'), 'signed in as alice');
    await p.goto(`${base}/ui#/queue?state=all`);
    await p.getByTestId(`row-${mine.id}`).waitFor();
    // Live: an admin's job first, then one of alice's; once hers shows, the admin's would have.
    const other = await apiPost('/v1/jobs', {name: 'not-for-alice', account: 'other', image: '/i', command: ['x'],
      gpus_per_node: 1, gpu_type: 'h200', env: {GSCHED_SIM_DURATION_S: '3600'}});
    const second = await apiPost('/v1/jobs', {name: 'alice-2', account: 'proj-b', image: '/i', command: ['x'],
      gpus_per_node: 1, gpu_type: 'h200', env: {GSCHED_SIM_DURATION_S: '3600'}}, alice);
    await p.getByTestId(`row-${second.id}`).waitFor();
    const shown = await p.locator('[data-testid="queue-list"] .vrow').evaluateAll((els) => els.map((e) => Number(e.dataset.key)));
    const apiIds = [];
    for (const state of ['pending,starting,running', 'completed,failed,cancelled,timeout,node_fail,preempted']) {
      apiIds.push(...(await apiGet(`/v1/jobs?state=${state}`, alice)).jobs.map((j) => j.id));
    }
    check(shown.sort().join(',') === apiIds.sort().join(','), `page ${shown} vs API ${apiIds}`);
    check(!shown.includes(other.id) && !shown.includes(jobId), 'no other user\'s jobs');
    await shot(p, '09-user-queue');
    // Someone else's job page says it cannot be seen, and the nodes view has no admin buttons.
    await p.goto(`${base}/ui#/jobs/${other.id}`);
    await p.getByTestId('job-error').waitFor();
    await p.getByRole('link', {name: 'Nodes'}).click();
    await p.getByTestId('row-dj-0000').waitFor();
    check(await p.getByTestId('drain').count() === 0 && await p.getByTestId('resume').count() === 0,
          'no drain or resume buttons for a user');
    await shot(p, '10-user-nodes');
    const bad = aliceProblems.filter((x) => !/40[34]/.test(x));
    check(bad.length === 0, `browser errors:\n${bad.join('\n')}`);
    await ctx.close();
  });

  await step('the queue stays a virtualised list with 20,000 jobs', async () => {
    const ctx = await browser.newContext({viewport: {width: 1440, height: 900}});
    const p = await ctx.newPage();
    const pageProblems = watchConsole(p, 'scale');
    await signIn(p, adminToken);
    await p.getByRole('link', {name: 'Queue'}).click();
    await p.getByTestId('queue-list').waitFor();
    // One-GPU jobs on the five free h200s: a handful run, the rest wait.
    const spec = {name: 'bulk', account: 'proj-b', image: '/i', command: ['x'], gpus_per_node: 1,
                  gpu_type: 'h200', env: {GSCHED_SIM_DURATION_S: '3600'}};
    const t0 = Date.now();
    const ids = [];
    for (let b = 0; b < 4; b++) {
      ids.push(...(await apiPost('/v1/jobs', {jobs: new Array(5000).fill(spec)})).ids);
    }
    const last = Math.max(...ids);
    await p.getByTestId('queue-search').fill('bulk');
    await waitFor('all 20,000 jobs in the queue', async () =>
      (await p.getByTestId('queue-count').textContent()).startsWith('20,000 of'), 60_000);
    const caughtUp = Date.now() - t0;
    const rows = await p.locator('[data-testid="queue-list"] .vrow').count();
    check(rows > 0 && rows < 120, `rows in the DOM: ${rows}`);
    await p.getByTestId('queue-sort').selectOption('newest');
    await p.getByTestId(`row-${last}`).waitFor();
    await p.getByTestId('queue-list').evaluate((el) => { el.scrollTop = el.scrollHeight; });
    await p.getByTestId(`row-${Math.min(...ids)}`).waitFor();
    // The page still answers quickly while the scheduler works through the queue.
    const t1 = Date.now();
    await p.getByRole('link', {name: 'Cluster'}).click();
    await p.getByTestId('heat-group').first().waitFor();
    await p.getByRole('link', {name: 'Queue'}).click();
    await p.getByTestId('queue-list').waitFor();
    console.log(`     20,000 submitted jobs listed ${caughtUp} ms after the first submission; ` +
                `${rows} rows in the DOM; a view switch and back took ${Date.now() - t1} ms`);
    await shot(p, '11-queue-20k');
    check(pageProblems.length === 0, `browser errors:\n${pageProblems.join('\n')}`);
    await ctx.close();
  });

  await step('an API call answered by a standby moves the page to the leader', async () => {
    // A scheduler that served the page and has since become a standby (DESIGN.md section 12):
    // it serves the dashboard's files, and answers every API call with 503 naming the leader.
    const standby = await startFakeStandby(base);
    try {
      const ctx = await browser.newContext();
      const p = await ctx.newPage();
      await p.goto(`${standby.url}/ui#/queue`);
      await p.getByTestId('token-input').fill(adminToken);
      await p.getByTestId('sign-in').click();
      await waitFor('the page to move to the leader', () => p.url().startsWith(`${base}/ui/`));
      check(p.url() === `${base}/ui/#/queue`, `the same view on the leader: ${p.url()}`);
      // The token stayed behind (sessionStorage is per origin): the leader asks for it.
      await p.getByTestId('signin-form').waitFor();
      check(standby.apiCalls() >= 1, 'the standby was asked');
      await ctx.close();
    } finally {
      await standby.close();
    }
  });

  await step('signing out forgets the token', async () => {
    const ctx = await browser.newContext();
    const p = await ctx.newPage();
    await signIn(p, adminToken);
    await p.getByTestId('sign-out').click();
    await p.getByTestId('signin-form').waitFor();
    check(await p.evaluate(() => sessionStorage.getItem('gsched.token')) === null, 'token removed');
    await ctx.close();
  });
}

// ---- Main ------------------------------------------------------------------------------------

const t0 = Date.now();
const deadline = setTimeout(() => {
  console.error(`FAIL: the run took longer than ${kRunDeadlineMs} ms`);
  for (const c of children) c.kill('SIGKILL');
  process.exit(1);
}, kRunDeadlineMs);

let browser = null;
let failed = false;
try {
  await startCluster();
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  await run(browser);
} catch (e) {
  failed = true;
  if (!results.some((r) => !r.ok)) console.log(`FAIL setup\n     ${e.stack || e}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  await stopAll();
  clearTimeout(deadline);
  for (const f of fs.readdirSync(work)) {
    if (f.endsWith('.log')) fs.copyFileSync(path.join(work, f), path.join(outDir, f));
  }
  fs.rmSync(work, {recursive: true, force: true});
}
const passed = results.filter((r) => r.ok).length;
console.log(`${passed}/${results.length} steps passed in ${((Date.now() - t0) / 1000).toFixed(1)} s; ` +
            `screenshots and logs in ${outDir}`);
process.exit(failed ? 1 : 0);
