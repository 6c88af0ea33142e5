// What the dashboard knows: jobs (slim records), nodes, accounts and cluster totals, loaded from
// the REST API and kept current by the watch feed's events. Views subscribe and get one call per
// batch of changes, never one per event.

import {isTerminal, throttled} from './dom.js';

const kActiveStates = ['pending', 'starting', 'running'];
const kFinishedKept = 5000;     // Finished jobs seen this session that stay listed.
const kRecentEvents = 5000;     // Events kept for job timelines.

export function slimJob(j) {
  const spec = j.spec || {};
  const types = Array.isArray(spec.gpu_type) ? spec.gpu_type.join(' | ') : (spec.gpu_type || '');
  const r = j.reason;
  return {
    id: j.id,
    name: spec.name || '',
    user: j.user,
    account: spec.account || '',
    state: j.state,
    gpus: (spec.nodes || 1) * (spec.gpus_per_node || 0),
    gpuType: types,
    submit: j.submit_time,
    start: j.start_time,
    end: j.end_time,
    attempt: j.attempt,
    node: j.allocation && j.allocation.length ? j.allocation[0].node : '',
    nodes: j.allocation ? j.allocation.length : 0,
    reason: r ? {code: r.code, message: r.message, est: r.estimated_start} : null,
    held: !!j.held,
    priority: j.priority,
    exit: j.exit_code,
    fetched: Date.now(),
  };
}

export class Store {
  constructor(api, who) {
    this.api = api;
    this.who = who;
    this.jobs = new Map();
    this.nodes = new Map();
    this.accounts = [];
    this.cluster = null;
    this.recent = [];
    this.finishedOrder = [];
    this.listeners = new Set();
    this.nodesWanted = 0;  // Views that show nodes; node totals refresh only while one is open.
    this.pending = {jobs: false, nodes: false, accounts: false, cluster: false};
    this.refreshNodesSoon = throttled(() => this.loadNodes().catch(() => {}), 2000);
    this.refreshClusterSoon = throttled(() => this.loadCluster().catch(() => {}), 2000);
    this.refreshAccountsSoon = throttled(() => this.loadAccounts().catch(() => {}), 2000);
  }

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(changes) {
    for (const fn of this.listeners) fn(changes);
  }

  // The whole picture. Returns the seq it is current to: the feed resumes after it.
  async loadAll() {
    const cluster = await this.api.get('/v1/cluster');
    const since = cluster.last_event_seq;
    this.cluster = cluster;
    const jobs = new Map();
    await Promise.all([
      this.api.listJobs(kActiveStates, (page) => {
        for (const j of page) jobs.set(j.id, slimJob(j));
      }),
      this.loadNodes(false),
      this.loadAccounts(false),
    ]);
    // Finished jobs seen this session stay; the active ones come from the new list.
    for (const [id, j] of this.jobs) {
      if (isTerminal(j.state) && !jobs.has(id)) jobs.set(id, j);
    }
    this.jobs = jobs;
    this.emit({jobs: true, nodes: true, accounts: true, cluster: true});
    return since;
  }

  async loadNodes(emit = true) {
    const r = await this.api.get('/v1/nodes');
    const nodes = new Map();
    for (const n of r.nodes) nodes.set(n.name, n);
    this.nodes = nodes;
    if (emit) this.emit({nodes: true});
  }

  async loadAccounts(emit = true) {
    const r = await this.api.get('/v1/accounts');
    this.accounts = r.accounts;
    if (emit) this.emit({accounts: true});
  }

  async loadCluster() {
    this.cluster = await this.api.get('/v1/cluster');
    this.emit({cluster: true});
  }

  // Fetches the named jobs again (pending reasons and estimates change with every pass without
  // an event), a few at a time.
  async refreshJobs(ids) {
    const queue = [...ids];
    const changed = new Set();
    const worker = async () => {
      while (queue.length) {
        const id = queue.shift();
        try {
          const j = await this.api.get(`/v1/jobs/${id}`);
          this.jobs.set(id, slimJob(j));
          changed.add(id);
        } catch (e) {
          if (e.status === 404) {
            this.jobs.delete(id);
            changed.add(id);
          }
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    if (changed.size) this.emit({jobs: changed});
  }

  rememberFinished(id) {
    this.finishedOrder.push(id);
    while (this.finishedOrder.length > kFinishedKept) {
      const old = this.finishedOrder.shift();
      const j = this.jobs.get(old);
      if (j && isTerminal(j.state)) this.jobs.delete(old);
    }
  }

  // One batch of feed events.
  apply(events) {
    const changes = {jobs: new Set(), nodes: false, accounts: false, cluster: false, events};
    let placementChanged = false;
    for (const e of events) {
      this.recent.push(e);
      const d = e.data || {};
      if (e.type.startsWith('job.')) {
        const id = d.job;
        if (typeof id !== 'number') continue;
        let j = this.jobs.get(id);
        if (!j) {
          j = {id, name: d.name || '', user: d.user, account: d.account, state: 'pending',
               gpus: d.gpus || 0, gpuType: '', submit: e.time, attempt: 0, node: '', nodes: 0,
               reason: null, held: false, fetched: 0};
          this.jobs.set(id, j);
        }
        if (e.type === 'job.state') {
          j.state = d.to;
          if (d.attempt !== undefined) j.attempt = d.attempt;
          if (d.node) j.node = d.node;
          if (d.exit_code !== undefined) j.exit = d.exit_code;
          if (d.to === 'starting' || (d.to === 'running' && !j.start)) j.start = e.time;
          if (d.to !== 'pending') j.reason = null;
          if (d.to === 'pending') {
            j.fetched = 0;
            j.end = null;
          }
          if (isTerminal(d.to)) {
            j.end = e.time;
            this.rememberFinished(id);
          }
          placementChanged = placementChanged || d.to !== 'pending' || d.from !== 'pending';
        } else if (e.type === 'job.held' || e.type === 'job.released') {
          j.held = e.type === 'job.held';
          j.fetched = 0;
        }
        changes.jobs.add(id);
      } else if (e.type === 'node.state') {
        const n = this.nodes.get(d.node);
        if (n) {
          n.state = d.to;
          n.state_reason = d.to === 'up' ? '' : d.reason || '';
        } else {
          this.refreshNodesSoon();
        }
        changes.nodes = true;
        placementChanged = true;
      } else if (e.type === 'node.health') {
        const n = this.nodes.get(d.node);
        const g = n && n.gpus ? n.gpus.find((x) => x.index === d.gpu) : null;
        if (g) g.health = d.health;
        changes.nodes = true;
      } else if (e.type.startsWith('account.')) {
        this.refreshAccountsSoon();
      }
    }
    if (this.recent.length > kRecentEvents) this.recent.splice(0, this.recent.length - kRecentEvents);
    if (placementChanged) {
      // Which GPUs a job holds is not in its events: the node list tells.
      if (this.nodesWanted > 0) this.refreshNodesSoon();
      this.refreshClusterSoon();
    }
    this.emit(changes);
  }

  eventsOfJob(id) {
    return this.recent.filter((e) => e.data && e.data.job === id);
  }
}
