// The REST API with the session's bearer token. Errors come back as `ApiError` carrying the
// server's `{"error": {"code", "message", "field"}}`; a standby's 503 also moves the page to the
// leader (`leaderPage`).

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

// Where a standby scheduler (DESIGN.md section 12) sends the dashboard: a standby answers API
// calls with 503 and names the leader (`X-Gsched-Leader`, or the error body's `leader`). The page
// moves to the same view on the leader: `LEADER/ui/#/view...`. Only http(s) URLs of another origin
// are followed. The token does not travel: it lives in this origin's sessionStorage, so the
// leader's page asks for it again rather than carrying it in a URL.
export function leaderPage(leader, hash) {
  let url;
  try {
    url = new URL(leader);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  if (url.origin === location.origin) return null;
  return `${url.origin}/ui/${hash || ''}`;
}

export class Api {
  constructor(token) {
    this.token = token;
  }

  async request(method, path, body) {
    const headers = {Authorization: `Bearer ${this.token}`};
    const init = {method, headers, cache: 'no-store'};
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'unavailable', `the scheduler cannot be reached (${e.message})`);
    }
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!res.ok) {
      const err = data && data.error ? data.error : {};
      if (res.status === 503) {
        const leader = res.headers.get('X-Gsched-Leader') || err.leader;
        const page = leader ? leaderPage(leader, location.hash) : null;
        if (page) location.assign(page);
      }
      throw new ApiError(res.status, err.code || String(res.status),
                         err.message || res.statusText || 'request failed', err.field);
    }
    return data;
  }

  get(path) { return this.request('GET', path); }
  post(path, body) { return this.request('POST', path, body); }

  // Every job in `states`, paged; `onPage` sees each page as it arrives.
  async listJobs(states, onPage, pageSize = 5000) {
    let after = null;
    for (;;) {
      const q = new URLSearchParams({state: states.join(','), limit: String(pageSize)});
      if (after !== null) q.set('after', String(after));
      const page = await this.get(`/v1/jobs?${q}`);
      onPage(page.jobs);
      if (page.next_after === undefined || page.jobs.length === 0) return;
      after = page.next_after;
    }
  }
}
