// The sinew viz dashboard. Three hash-routed views over the viz JSON API (docs/architecture/viz.md):
//
//   #/                               namespaces at a glance          GET api/stat?resource=ns&allNamespaces=true
//   #/namespaces/NS                  workloads and their topology    GET api/stat, api/edges
//   #/namespaces/NS/deploy/NAME      one workload, its peers, the traffic split of the routes it calls (api/routes
//                                    with to=svc), routes, authorizations and live calls (api/tap, like `viz top`)
//
// Plain browser JavaScript with no build step and no third-party code: everything the page needs is served by the
// viz server itself. API paths are relative so the dashboard also works behind a proxy that adds a path prefix.

const REFRESH_MS = 5000;
const TAP_MAX_RPS = 20;
const SVG_NS = 'http://www.w3.org/2000/svg'; // a namespace name, never fetched

// ---------------------------------------------------------------------------------------------------------------
// Formatting, the same way the CLI prints its tables.

const fmt = {
  pct: (v) => (v == null ? '-' : `${(v * 100).toFixed(2)}%`),
  rps: (v) => (v == null ? '-' : `${v.toFixed(1)}rps`),
  ms: (v) => (v == null ? '-' : `${Math.round(v)}ms`),
  count: (v) => (v == null ? '-' : String(Math.round(v))),
  meshed(r) {
    if (r.meshedPodCount == null && r.totalPodCount == null) return '-';
    return `${r.meshedPodCount ?? 0}/${r.totalPodCount ?? 0}`;
  },
  // Tap latencies are often below a millisecond locally, so they keep more precision than stat's "3ms".
  latency(ms) {
    if (ms == null) return '-';
    if (ms >= 10) return `${Math.round(ms)}ms`;
    if (ms >= 1) return `${ms.toFixed(1)}ms`;
    return `${Math.round(ms * 1000)}µs`;
  },
};

// health names the colour of a success rate (0..1): good ≥ 99 %, warn ≥ 90 %, bad below, none without data.
function health(sr) {
  if (sr == null) return 'none';
  if (sr >= 0.99) return 'good';
  if (sr >= 0.9) return 'warn';
  return 'bad';
}

// shortID shows spiffe://td/ns/N/sa/S as S.N, as the CLI does.
function shortID(id) {
  const m = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(id || '');
  return m ? `${m[2]}.${m[1]}` : id || '-';
}

const enc = encodeURIComponent;
const nsHref = (ns) => `#/namespaces/${enc(ns)}`;
const deployHref = (ns, name) => `#/namespaces/${enc(ns)}/deploy/${enc(name)}`;

// ---------------------------------------------------------------------------------------------------------------
// DOM helpers.

function build(el, props, kids) {
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = dv;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat()) if (kid != null && kid !== false) el.append(kid);
  return el;
}
const h = (tag, props, ...kids) => build(document.createElement(tag), props, kids);
const svg = (tag, props, ...kids) => build(document.createElementNS(SVG_NS, tag), props, kids);

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}
function setAttr(el, name, value) {
  if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

// ---------------------------------------------------------------------------------------------------------------
// The API.

// apiError is the Error of a failed answer whose body is text: the API's own {"error": …} message, else the status
// and the start of the body. It carries the answer's CLI command.
function apiError(res, text) {
  let msg = null;
  try {
    msg = JSON.parse(text).error;
  } catch {
    // not the API's JSON: the raw text below
  }
  const err = new Error(msg || `HTTP ${res.status}: ${text.slice(0, 300) || res.statusText}`);
  err.command = res.headers.get('X-Sinew-Command');
  return err;
}

// api GETs api/PATH?params and returns {body, command}; it throws an Error carrying the API's own message.
async function api(path, params, signal) {
  const url = `api/${path}?${new URLSearchParams(params)}`;
  let res;
  try {
    res = await fetch(url, { signal, headers: { Accept: 'application/json' } });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new Error(`cannot reach the viz API (${e.message})`);
  }
  const text = await res.text();
  if (!res.ok) throw apiError(res, text);
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: reported below
  }
  if (body == null || typeof body !== 'object') throw new Error(`${url} answered something that is not JSON`);
  return { body, command: res.headers.get('X-Sinew-Command') };
}

// ---------------------------------------------------------------------------------------------------------------
// Building blocks: a panel (title, CLI equivalent, error line, body) and a table whose rows are kept by key, so a
// refresh changes only the cells that changed and nothing flickers.

function panel(title, cli, { testid, extra } = {}) {
  const code = h('code', { 'data-testid': 'cli', text: cli });
  const err = h('div', { class: 'error', role: 'alert', 'data-testid': 'error', hidden: true });
  const body = h('div', { class: 'panel-body' });
  const el = h('section', { class: 'panel', 'data-testid': testid },
    h('div', { class: 'panel-head' }, h('h2', { text: title }), extra),
    h('div', { class: 'cli' }, h('span', { class: 'prompt', 'aria-hidden': 'true', text: '$' }), code),
    err, body);
  return {
    el,
    body,
    setCLI(c) {
      if (c) setText(code, c);
    },
    setError(msg) {
      err.hidden = !msg;
      setText(err, msg || '');
      el.classList.toggle('stale', Boolean(msg));
    },
  };
}

// load runs one request for a panel: the CLI line and the error line follow the answer, and render gets the body.
async function load(p, request, render) {
  try {
    const { body, command } = await request();
    p.setCLI(command);
    p.setError('');
    render(body);
    return true;
  } catch (e) {
    if (e.name === 'AbortError') return false;
    p.setCLI(e.command);
    p.setError(e.message);
    return false;
  }
}

const cellSig = new WeakMap();

// A cell value is a string or {text, href, dot, cls, title}.
function setCell(td, base, v) {
  if (v == null || typeof v !== 'object') v = { text: v == null ? '-' : String(v) };
  const sig = JSON.stringify(v);
  if (cellSig.get(td) === sig) return;
  cellSig.set(td, sig);
  const kids = [];
  if (v.dot) kids.push(h('span', { class: `dot ${v.dot}`, 'aria-hidden': 'true' }));
  kids.push(v.href ? h('a', { href: v.href, text: v.text }) : v.text);
  td.replaceChildren(...kids);
  td.className = [base, v.cls].filter(Boolean).join(' ');
  if (v.title) td.title = v.title;
  else td.removeAttribute('title');
}

class Table {
  // columns: [{title, num, cell(row)}]; key(row) names a row; rowData(row) gives data-* attributes.
  constructor(columns, { testid, key, rowData, empty }) {
    this.columns = columns;
    this.key = key;
    this.rowData = rowData;
    this.trs = new Map();
    this.tbody = h('tbody');
    this.table = h('table', { 'data-testid': testid },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : null, scope: 'col', text: c.title })))),
      this.tbody);
    this.empty = h('p', { class: 'empty', text: empty, hidden: true });
    this.el = h('div', { class: 'table-wrap' }, this.table, this.empty);
  }

  update(rows) {
    const seen = new Set();
    let prev = null;
    for (const row of rows) {
      const k = this.key(row);
      if (seen.has(k)) continue;
      seen.add(k);
      let tr = this.trs.get(k);
      if (!tr) {
        tr = h('tr', {}, this.columns.map(() => h('td')));
        this.trs.set(k, tr);
      }
      this.columns.forEach((c, i) => setCell(tr.cells[i], c.num ? 'num' : '', c.cell(row)));
      if (this.rowData) {
        for (const [dk, dv] of Object.entries(this.rowData(row))) if (tr.dataset[dk] !== String(dv)) tr.dataset[dk] = dv;
      }
      const want = prev ? prev.nextSibling : this.tbody.firstChild;
      if (want !== tr) this.tbody.insertBefore(tr, want);
      prev = tr;
    }
    for (const [k, tr] of this.trs) {
      if (!seen.has(k)) {
        tr.remove();
        this.trs.delete(k);
      }
    }
    this.empty.hidden = seen.size > 0;
  }
}

const srCell = (v) => ({ text: fmt.pct(v), dot: health(v), cls: `sr-${health(v)}` });

// The golden-metric columns every stat table shares.
const metricColumns = [
  { title: 'Success', num: true, cell: (r) => srCell(r.success) },
  { title: 'RPS', num: true, cell: (r) => fmt.rps(r.rps) },
  { title: 'P50', num: true, cell: (r) => fmt.ms(r.latencyMsP50) },
  { title: 'P95', num: true, cell: (r) => fmt.ms(r.latencyMsP95) },
  { title: 'P99', num: true, cell: (r) => fmt.ms(r.latencyMsP99) },
];

// ---------------------------------------------------------------------------------------------------------------
// The topology graph: a layered drawing in inline SVG, callers to the left of the workloads they call.

// layout gives each node id a column (layer) and a row. Cycles are broken by ignoring the edges that close them
// (found by a depth-first walk in name order), columns are longest paths over what remains, and rows are ordered by
// the mean row of their neighbours, a few sweeps each way. The result depends only on the ids and links, so an
// unchanged graph keeps its drawing across refreshes.
function layout(ids, links) {
  ids = [...ids].sort();
  const out = new Map(ids.map((id) => [id, []]));
  const hasIn = new Set();
  for (const [a, b] of links) {
    if (a === b || !out.has(a) || !out.has(b)) continue;
    out.get(a).push(b);
    hasIn.add(b);
  }
  for (const list of out.values()) list.sort();

  const state = new Map(); // 1 while on the walk's path, 2 when done
  const forward = [];
  const walk = (u) => {
    state.set(u, 1);
    for (const v of out.get(u)) {
      const s = state.get(v);
      if (s === 1) continue; // closes a cycle
      forward.push([u, v]);
      if (!s) walk(v);
    }
    state.set(u, 2);
  };
  for (const id of ids) if (!hasIn.has(id) && !state.has(id)) walk(id);
  for (const id of ids) if (!state.has(id)) walk(id);

  const succ = new Map(ids.map((id) => [id, []]));
  const pred = new Map(ids.map((id) => [id, []]));
  const indeg = new Map(ids.map((id) => [id, 0]));
  for (const [a, b] of forward) {
    succ.get(a).push(b);
    pred.get(b).push(a);
    indeg.set(b, indeg.get(b) + 1);
  }
  const layer = new Map(ids.map((id) => [id, 0]));
  const queue = ids.filter((id) => indeg.get(id) === 0);
  while (queue.length) {
    const u = queue.shift();
    for (const v of succ.get(u)) {
      layer.set(v, Math.max(layer.get(v), layer.get(u) + 1));
      indeg.set(v, indeg.get(v) - 1);
      if (indeg.get(v) === 0) queue.push(v);
    }
  }

  const columns = [];
  for (const id of ids) {
    const l = layer.get(id);
    (columns[l] ||= []).push(id);
  }
  const pos = new Map();
  const place = () => columns.forEach((col) => col.forEach((id, i) => pos.set(id, i)));
  place();
  const sweep = (range, neighbours) => {
    for (const l of range) {
      const col = columns[l];
      const mean = new Map(col.map((id) => {
        const ns = neighbours.get(id);
        return [id, ns.length ? ns.reduce((s, n) => s + pos.get(n), 0) / ns.length : pos.get(id)];
      }));
      col.sort((a, b) => mean.get(a) - mean.get(b) || (a < b ? -1 : 1));
      col.forEach((id, i) => pos.set(id, i));
    }
  };
  const up = [...columns.keys()].slice(1);
  const down = [...columns.keys()].reverse().slice(1);
  for (let i = 0; i < 4; i++) {
    sweep(up, pred);
    sweep(down, succ);
  }
  return { layer, pos, columns };
}

const NODE_W = 170, NODE_H = 50, COL_GAP = 120, ROW_GAP = 26, PAD = 24;

class Graph {
  // One graph per view; testid is "topology" for a namespace and "octopus" for one workload's neighbourhood.
  constructor(testid, emptyText) {
    this.id = testid;
    this.nodeEls = new Map();
    this.edgeEls = new Map();
    const marker = (cls) => svg('marker', {
      id: `${testid}-arrow-${cls}`, class: `arrow sr-${cls}`, viewBox: '0 0 10 10', refX: 9, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse',
    }, svg('path', { d: 'M0,0 L10,5 L0,10 z' }));
    this.edgeLayer = svg('g', { class: 'edges' });
    this.nodeLayer = svg('g', { class: 'nodes' });
    this.svg = svg('svg', { 'data-testid': testid, class: 'graph', role: 'group', 'aria-label': `${testid} graph` },
      svg('defs', {}, ['good', 'warn', 'bad', 'none'].map(marker)),
      this.edgeLayer, this.nodeLayer);
    this.empty = h('p', { class: 'empty', text: emptyText, hidden: true });
    this.legend = h('p', { class: 'legend' },
      'Edges take the colour of the destination\'s success rate: ',
      h('span', { class: 'dot good' }), '≥ 99% ', h('span', { class: 'dot warn' }), '≥ 90% ',
      h('span', { class: 'dot bad' }), 'below ', h('span', { class: 'dot none' }), 'no data. ',
      svg('svg', { class: 'lock-legend', width: 18, height: 18, viewBox: '-9 -9 18 18' }, lockIcon()),
      ' solid: mTLS; dashed: not secured, with the reason.');
    this.el = h('div', { class: 'graph-wrap' }, this.svg, this.empty, this.legend);
  }

  // nodes: [{id, label, sub, href, sr, title}]; edges: [{src, dst, secured, reason, sr, title}], ids of nodes.
  update(nodes, edges) {
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const links = edges.filter((e) => byId.has(e.src) && byId.has(e.dst));
    const { layer, pos, columns } = layout(byId.keys(), links.map((e) => [e.src, e.dst]));
    const tallest = Math.max(1, ...columns.map((c) => c.length));
    const width = PAD * 2 + columns.length * NODE_W + Math.max(0, columns.length - 1) * COL_GAP;
    const loops = links.some((e) => layer.get(e.dst) <= layer.get(e.src));
    const height = PAD * 2 + tallest * NODE_H + (tallest - 1) * ROW_GAP + (loops ? 40 : 0); // room below for loops
    const xy = new Map();
    for (const [id, l] of layer) {
      const offset = ((tallest - columns[l].length) * (NODE_H + ROW_GAP)) / 2;
      xy.set(id, { x: PAD + l * (NODE_W + COL_GAP), y: PAD + offset + pos.get(id) * (NODE_H + ROW_GAP) });
    }
    setAttr(this.svg, 'viewBox', `0 0 ${width} ${height}`);
    setAttr(this.svg, 'width', String(width));
    setAttr(this.svg, 'height', String(height));
    this.svg.style.display = nodes.length ? '' : 'none';
    this.empty.hidden = nodes.length > 0;

    // Nodes.
    for (const n of nodes) {
      let g = this.nodeEls.get(n.id);
      if (!g) {
        g = svg('g', { 'data-testid': 'node', 'data-name': n.id, class: 'node' },
          svg('a', { href: n.href },
            svg('title'),
            svg('rect', { width: NODE_W, height: NODE_H, rx: 8 }),
            svg('text', { class: 'label', x: 12, y: 21 }),
            svg('text', { class: 'sub', x: 12, y: 39 })));
        this.nodeEls.set(n.id, g);
        this.nodeLayer.append(g);
      }
      const { x, y } = xy.get(n.id);
      setAttr(g, 'transform', `translate(${x},${y})`);
      setAttr(g, 'class', `node sr-${health(n.sr)}${n.focus ? ' focus' : ''}`);
      setAttr(g, 'data-success', n.sr == null ? '' : String(n.sr));
      const a = g.firstChild;
      setAttr(a, 'href', n.href);
      const [title, , label, sub] = a.childNodes;
      setText(title, n.title);
      setText(label, n.label.length > 20 ? `${n.label.slice(0, 19)}…` : n.label);
      setText(sub, n.sub);
    }
    for (const [id, g] of this.nodeEls) {
      if (!byId.has(id)) {
        g.remove();
        this.nodeEls.delete(id);
      }
    }

    // Edges.
    const seen = new Set();
    for (const e of links) {
      const key = `${e.src}\u0000${e.dst}`;
      seen.add(key);
      let g = this.edgeEls.get(key);
      if (!g) {
        g = svg('g', { 'data-testid': 'edge', 'data-src': e.src, 'data-dst': e.dst },
          svg('title'), svg('path', { class: 'line' }), svg('text', { class: 'tag' }), lockIcon());
        this.edgeEls.set(key, g);
        this.edgeLayer.append(g);
      }
      const cls = health(e.sr);
      setAttr(g, 'class', `edge sr-${cls}${e.secured ? ' secured' : ' plain'}`);
      setAttr(g, 'data-secured', String(e.secured));
      const [title, path, tag, lock] = g.childNodes;
      setText(title, e.title);
      const { d, mid } = edgePath(xy.get(e.src), xy.get(e.dst), height);
      setAttr(path, 'd', d);
      setAttr(path, 'marker-end', `url(#${this.id}-arrow-${cls})`);
      setAttr(tag, 'x', String(mid.x));
      setAttr(tag, 'y', String(mid.y));
      // A drawn padlock rather than the 🔒 character, which needs an emoji font the machine may not have.
      setText(tag, e.secured ? '' : `⚠ ${e.reason || 'not secured'}`);
      setAttr(lock, 'transform', `translate(${mid.x},${mid.y})`);
      lock.style.display = e.secured ? '' : 'none';
    }
    for (const [key, g] of this.edgeEls) {
      if (!seen.has(key)) {
        g.remove();
        this.edgeEls.delete(key);
      }
    }
  }
}

function lockIcon() {
  return svg('g', { class: 'lock', 'aria-label': 'secured' },
    svg('circle', { r: 9 }),
    svg('path', { class: 'shackle', d: 'M-3,-1 V-3.5 A3,3 0 0 1 3,-3.5 V-1' }),
    svg('rect', { x: -4.5, y: -1.5, width: 9, height: 7, rx: 1.5 }));
}

// edgePath draws an arrow from a to b (node corners). Forward edges leave the right side and enter the left; an
// edge that goes back or stays in its column loops under the nodes; an edge to itself is a small loop on the right.
function edgePath(a, b, height) {
  const cub = (p0, p1, p2, p3) => ({
    d: `M${p0.x},${p0.y} C${p1.x},${p1.y} ${p2.x},${p2.y} ${p3.x},${p3.y}`,
    mid: { x: (p0.x + 3 * p1.x + 3 * p2.x + p3.x) / 8, y: (p0.y + 3 * p1.y + 3 * p2.y + p3.y) / 8 },
  });
  if (a === b || (a.x === b.x && a.y === b.y)) {
    const s = { x: a.x + NODE_W, y: a.y + NODE_H * 0.3 }, e = { x: a.x + NODE_W, y: a.y + NODE_H * 0.7 };
    return cub(s, { x: s.x + 50, y: s.y - 25 }, { x: e.x + 50, y: e.y + 25 }, e);
  }
  if (b.x > a.x) {
    const s = { x: a.x + NODE_W, y: a.y + NODE_H / 2 }, e = { x: b.x - 2, y: b.y + NODE_H / 2 };
    const dx = (e.x - s.x) / 2;
    return cub(s, { x: s.x + dx, y: s.y }, { x: e.x - dx, y: e.y }, e);
  }
  const s = { x: a.x + NODE_W / 2, y: a.y + NODE_H }, e = { x: b.x + NODE_W / 2, y: b.y + NODE_H + 2 };
  const low = Math.min(height - 8, Math.max(s.y, e.y) + 40);
  return cub(s, { x: s.x, y: low }, { x: e.x, y: low }, e);
}

// graphFrom turns stat rows (the nodes' own success rates) and edges of namespace ns into what Graph draws, with the
// workload focus (if any) drawn even without rows or edges. Peers in other namespaces are named NS/NAME.
function graphFrom(ns, rows, edges, focus) {
  const idOf = (rowNs, name) => (rowNs === ns ? name : `${rowNs}/${name}`);
  const stats = new Map(rows.map((r) => [idOf(r.namespace, r.name), r]));
  const nodes = new Map();
  const addNode = (rowNs, name) => {
    const id = idOf(rowNs, name);
    if (nodes.has(id)) return id;
    const r = stats.get(id);
    const sr = r ? r.success : null;
    nodes.set(id, {
      id, label: id, href: deployHref(rowNs, name), sr, focus: focus === id,
      sub: r && r.rps != null ? `${fmt.pct(sr)} · ${fmt.rps(r.rps)}` : 'no inbound traffic',
      title: r ? `deploy/${name} in ${rowNs}: success ${fmt.pct(sr)}, ${fmt.rps(r.rps)}, P99 ${fmt.ms(r.latencyMsP99)}`
        : `deploy/${name} in ${rowNs}`,
    });
    return id;
  };
  for (const r of rows) addNode(r.namespace, r.name);
  if (focus) addNode(ns, focus);
  // The API gives one edge per pair of workloads, already unsecured if any of its traffic was (metricsapi.Edges).
  const list = edges.map((e) => {
    const src = addNode(e.srcNamespace || ns, e.src);
    const dst = addNode(e.dstNamespace || ns, e.dst);
    const sr = nodes.get(dst).sr;
    const reason = e.noTlsReason || '';
    const tls = e.secured ? `mTLS, client ${shortID(e.clientId)}, server ${shortID(e.serverId)}` : `not secured: ${reason || 'unknown reason'}`;
    return { src, dst, secured: Boolean(e.secured), reason, sr, title: `${src} → ${dst}: ${tls}; ${dst} success ${fmt.pct(sr)}` };
  });
  return { nodes: [...nodes.values()], edges: list };
}

// ---------------------------------------------------------------------------------------------------------------
// Live calls: the tap stream aggregated in place, like `sinew viz top`.

// durationMs reads a protobuf JSON duration ("0.001234s") as milliseconds.
function durationMs(d) {
  if (typeof d !== 'string' || !d.endsWith('s')) return null;
  const v = parseFloat(d);
  return Number.isFinite(v) ? v * 1000 : null;
}

// peerName names a request's peer: its deployment, else its pod, else its service account (inbound requests know
// the caller only by the identity it proved), else the mTLS identity, else the address (without the source's
// ephemeral port). Peers in another namespace than the page's are named NS/NAME.
function peerName(labels, id, addr, ns, dropPort) {
  const l = labels || {};
  const inNs = (name) => (l.namespace && l.namespace !== ns ? `${l.namespace}/${name}` : name);
  if (l.deployment || l.pod) return inNs(l.deployment || l.pod);
  if (l.serviceaccount) return inNs(`sa/${l.serviceaccount}`);
  if (id) return shortID(id);
  if (!addr) return '-';
  return dropPort ? addr.replace(/:\d+$/, '') : addr;
}

class LiveCalls {
  constructor(view, ns, name) {
    this.view = view;
    this.params = { resource: `deploy/${name}`, namespace: ns, maxRps: String(TAP_MAX_RPS) };
    this.calls = new Map(); // aggregate key → row
    this.pending = new Map(); // proxy + request id → request in flight
    this.warnings = new Map(); // proxy → error
    this.events = 0;
    this.ctrl = null;
    this.toggle = h('button', { type: 'button', class: 'toggle', 'data-testid': 'tap-toggle', onclick: () => (this.ctrl ? this.stop() : this.start()) });
    this.clear = h('button', { type: 'button', class: 'secondary', text: 'Clear', onclick: () => this.reset() });
    this.status = h('span', { class: 'status', 'data-testid': 'tap-status' });
    this.panel = panel('Live calls', `sinew viz top deploy/${name} -n ${ns}`, {
      testid: 'live', extra: h('div', { class: 'controls' }, this.status, this.clear, this.toggle),
    });
    this.table = new Table([
      { title: 'Source', cell: (c) => c.source },
      { title: 'Destination', cell: (c) => c.destination },
      { title: 'Method', cell: (c) => c.method },
      { title: 'Path', cell: (c) => ({ text: c.path, cls: 'path', title: c.authority ? `${c.authority}${c.path}` : null }) },
      { title: 'Count', num: true, cell: (c) => String(c.count) },
      { title: 'Best', num: true, cell: (c) => fmt.latency(c.best) },
      { title: 'Worst', num: true, cell: (c) => fmt.latency(c.worst) },
      { title: 'Last', num: true, cell: (c) => fmt.latency(c.last) },
      { title: 'Success Rate', num: true, cell: (c) => srCell(c.ok / c.count) },
    ], {
      testid: 'live-calls', key: (c) => c.key, empty: 'No requests seen yet.',
      rowData: (c) => ({ direction: c.direction, count: c.count }),
    });
    this.warn = h('ul', { class: 'warnings', hidden: true });
    this.panel.body.append(
      h('p', { class: 'hint', text: `Requests to and from deploy/${name}, sampled at up to ${TAP_MAX_RPS} per second, aggregated by source, destination, method and path.` }),
      this.table.el, this.warn);
    this.el = this.panel.el;
    this.renderSoon = null;
    view.onLeave(() => this.stop());
    this.setRunning(false, 'stopped');
  }

  setRunning(running, status) {
    setText(this.toggle, running ? 'Stop' : 'Start');
    this.toggle.classList.toggle('running', running);
    setText(this.status, status);
  }

  reset() {
    this.calls.clear();
    this.pending.clear();
    this.warnings.clear();
    this.events = 0;
    this.flush();
  }

  stop() {
    if (this.ctrl) this.ctrl.abort();
    this.ctrl = null;
  }

  async start() {
    if (this.ctrl) return;
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    this.panel.setError('');
    this.setRunning(true, 'waiting for requests…'); // the server answers with the first event
    let ended = 'stream ended';
    try {
      const res = await fetch(`api/tap?${new URLSearchParams(this.params)}`, { signal: ctrl.signal, headers: { Accept: 'application/x-ndjson' } });
      const command = res.headers.get('X-Sinew-Command');
      // The table aggregates like `top`, which takes the same arguments as the `tap` the server names.
      if (command) this.panel.setCLI(command.replace(/^sinew viz tap /, 'sinew viz top '));
      if (!res.ok) throw apiError(res, await res.text());
      this.setRunning(true, 'live');
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line) this.onLine(line);
        }
      }
    } catch (e) {
      if (e.name === 'AbortError') ended = 'stopped';
      else {
        ended = 'failed';
        this.panel.setError(`tap: ${e.message}`);
      }
    } finally {
      if (this.ctrl === ctrl) this.ctrl = null;
      this.flush();
      this.setRunning(Boolean(this.ctrl), this.ctrl ? this.status.textContent : ended);
    }
  }

  onLine(line) {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      return;
    }
    if (msg.error) {
      this.warnings.set(msg.proxy || `proxy ${msg.index}`, msg.error);
      this.scheduleRender();
      return;
    }
    const ev = msg.event;
    if (!ev) return;
    this.events++;
    const id = (x) => `${msg.proxy}\u0000${msg.index}\u0000${x.id ?? '0'}`; // protojson leaves out id 0
    if (ev.requestInit) {
      const r = ev.requestInit;
      const inbound = ev.direction === 'DIRECTION_INBOUND';
      const call = {
        direction: inbound ? 'inbound' : 'outbound',
        source: peerName(ev.sourceLabels, ev.clientId, ev.source, this.params.namespace, true),
        destination: peerName(ev.destinationLabels, ev.serverId, ev.destination, this.params.namespace, false),
        method: r.method || '-',
        path: r.path || '/',
        authority: r.authority || '',
      };
      if (this.pending.size > 5000) this.pending.delete(this.pending.keys().next().value);
      this.pending.set(id(r), call);
    } else if (ev.responseInit) {
      const call = this.pending.get(id(ev.responseInit));
      if (call) call.httpStatus = ev.responseInit.httpStatus ?? 0;
    } else if (ev.responseEnd) {
      const end = ev.responseEnd;
      const k = id(end);
      const call = this.pending.get(k);
      if (!call) return; // began before the stream did
      this.pending.delete(k);
      const ok = !end.resetError && !end.grpcStatus && (call.httpStatus ?? 0) < 500;
      const ms = durationMs(end.sinceRequestInit);
      this.record(call, ok, ms);
    }
  }

  record(call, ok, ms) {
    const key = [call.direction, call.source, call.destination, call.method, call.path].join('\u0000');
    let row = this.calls.get(key);
    if (!row) {
      row = { key, ...call, count: 0, ok: 0, best: null, worst: null, last: null };
      this.calls.set(key, row);
    }
    row.count++;
    if (ok) row.ok++;
    if (ms != null) {
      row.best = row.best == null ? ms : Math.min(row.best, ms);
      row.worst = row.worst == null ? ms : Math.max(row.worst, ms);
      row.last = ms;
    }
    this.scheduleRender();
  }

  scheduleRender() {
    if (this.renderSoon) return;
    this.renderSoon = setTimeout(() => this.flush(), 250);
  }

  flush() {
    clearTimeout(this.renderSoon);
    this.renderSoon = null;
    const rows = [...this.calls.values()].sort((a, b) => b.count - a.count || (a.key < b.key ? -1 : 1));
    this.table.update(rows);
    this.warn.hidden = this.warnings.size === 0;
    this.warn.replaceChildren(...[...this.warnings].map(([p, e]) => h('li', { text: `${p}: ${e}` })));
    if (this.ctrl && this.events) setText(this.status, `live · ${this.events} events`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Views.

// A View is what one route shows. Leaving it aborts its requests and stops its timers and streams.
class View {
  constructor(root) {
    this.root = root;
    this.ctrl = new AbortController();
    this.signal = this.ctrl.signal;
    this.leaving = [];
    this.timer = null;
  }

  onLeave(fn) {
    this.leaving.push(fn);
  }

  // every runs tick now and then REFRESH_MS after each run ends, skipping runs while the tab is hidden.
  every(tick) {
    const run = async () => {
      if (this.signal.aborted) return;
      if (!document.hidden || !this.ran) {
        this.ran = true;
        await tick();
      }
      if (!this.signal.aborted) this.timer = setTimeout(run, REFRESH_MS);
    };
    run();
  }

  leave() {
    this.ctrl.abort();
    clearTimeout(this.timer);
    for (const fn of this.leaving) fn();
  }
}

function crumbs(items) {
  const nav = document.querySelector('[data-testid=breadcrumbs]');
  const kids = [h('a', { href: '#/', text: 'Namespaces' })];
  for (const it of items) {
    kids.push(h('span', { class: 'sep', 'aria-hidden': 'true', text: '›' }));
    kids.push(it.href ? h('a', { href: it.href, text: it.text }) : h('span', { 'aria-current': 'page', text: it.text }));
  }
  nav.replaceChildren(...kids);
  document.title = ['sinew viz', ...items.map((i) => i.text)].join(' · ');
}

function namespacesView(view) {
  crumbs([]);
  const p = panel('Health by namespace', 'sinew viz stat ns -A', { testid: 'namespaces-panel' });
  const table = new Table([
    { title: 'Namespace', cell: (r) => ({ text: r.name, href: nsHref(r.name), dot: health(r.success) }) },
    { title: 'Meshed', num: true, cell: (r) => fmt.meshed(r) },
    ...metricColumns.filter((c) => c.title !== 'P50' && c.title !== 'P95'),
    { title: 'TCP', num: true, cell: (r) => fmt.count(r.tcpConnections) },
  ], { testid: 'namespaces', key: (r) => r.name, empty: 'No meshed namespace has answered yet.' });
  p.body.append(table.el);
  view.root.append(h('h1', { text: 'Namespaces' }), p.el);
  view.every(() => load(p, () => api('stat', { resource: 'ns', allNamespaces: 'true' }, view.signal),
    (b) => table.update((b.rows || []).map((r) => ({ ...r, name: r.name || r.namespace })))));
}

function namespaceView(view, ns) {
  crumbs([{ text: ns }]);
  const statP = panel('Workloads', `sinew viz stat deploy -n ${ns}`, { testid: 'workloads-panel' });
  const graphP = panel('Topology', `sinew viz edges deploy -n ${ns}`, { testid: 'topology-panel' });
  const table = new Table([
    { title: 'Workload', cell: (r) => ({ text: r.name, href: deployHref(r.namespace || ns, r.name) }) },
    { title: 'Meshed', num: true, cell: (r) => fmt.meshed(r) },
    ...metricColumns,
    { title: 'TCP', num: true, cell: (r) => fmt.count(r.tcpConnections) },
  ], { testid: 'workloads', key: (r) => `${r.namespace}/${r.name}`, empty: `No meshed workloads in ${ns} have answered yet.` });
  const graph = new Graph('topology', 'No traffic between workloads in the last minute.');
  statP.body.append(table.el);
  graphP.body.append(graph.el);
  view.root.append(h('h1', {}, 'Namespace ', h('span', { class: 'name', text: ns })), graphP.el, statP.el);

  let rows = [], edges = [];
  view.every(async () => {
    await Promise.all([
      load(statP, () => api('stat', { resource: 'deploy', namespace: ns }, view.signal), (b) => {
        rows = b.rows || [];
        table.update(rows);
      }),
      load(graphP, () => api('edges', { kind: 'deploy', namespace: ns }, view.signal), (b) => {
        edges = b.edges || [];
      }),
    ]);
    if (view.signal.aborted) return;
    const g = graphFrom(ns, rows, edges);
    graph.update(g.nodes, g.edges);
  });
}

function workloadView(view, ns, name) {
  const res = `deploy/${name}`;
  crumbs([{ text: ns, href: nsHref(ns) }, { text: res }]);

  // Its own golden metrics, as tiles.
  const summaryP = panel('Golden metrics', `sinew viz stat ${res} -n ${ns}`, { testid: 'summary-panel' });
  const tiles = {};
  const tileRow = h('div', { class: 'tiles', 'data-testid': 'summary' },
    [['meshed', 'Meshed'], ['success', 'Success rate'], ['rps', 'RPS'], ['p50', 'P50'], ['p95', 'P95'], ['p99', 'P99'], ['tcp', 'TCP connections']]
      .map(([k, label]) => h('div', { class: 'tile' }, h('div', { class: 'tile-label', text: label }), (tiles[k] = h('div', { class: 'tile-value', text: '-' })))));
  summaryP.body.append(tileRow);
  const showSummary = (r) => {
    setText(tiles.meshed, r ? fmt.meshed(r) : '-');
    setText(tiles.success, fmt.pct(r?.success));
    tiles.success.className = `tile-value sr-${health(r?.success)}`;
    setText(tiles.rps, fmt.rps(r?.rps));
    setText(tiles.p50, fmt.ms(r?.latencyMsP50));
    setText(tiles.p95, fmt.ms(r?.latencyMsP95));
    setText(tiles.p99, fmt.ms(r?.latencyMsP99));
    setText(tiles.tcp, fmt.count(r?.tcpConnections));
  };

  // Its neighbourhood: callers, itself, callees.
  const octoP = panel('Neighbours', `sinew viz edges deploy -n ${ns}`, { testid: 'octopus-panel' });
  const octopus = new Graph('octopus', 'No traffic to or from this workload in the last minute.');
  octoP.body.append(octopus.el);

  const peerTable = (testid, title, href) => new Table([
    { title, cell: (r) => ({ text: r.namespace && r.namespace !== ns ? `${r.namespace}/${r.name}` : r.name, href: href(r) }) },
    ...metricColumns,
  ], { testid, key: (r) => `${r.namespace}/${r.name}`, empty: 'None in the last minute.' });
  const inP = panel('Inbound', `sinew viz stat deploy -n ${ns} --to ${res}`, { testid: 'inbound-panel' });
  const inbound = peerTable('inbound', 'Caller', (r) => deployHref(r.namespace || ns, r.name));
  inP.body.append(h('p', { class: 'hint', text: `Callers' requests to ${res}, as the callers measured them.` }), inbound.el);
  const outP = panel('Outbound', `sinew viz stat deploy -n ${ns} --from ${res}`, { testid: 'outbound-panel' });
  const outbound = peerTable('outbound', 'Destination', (r) => deployHref(r.namespace || ns, r.name));
  outP.body.append(h('p', { class: 'hint', text: `${res}'s requests to each destination.` }), outbound.el);

  const live = new LiveCalls(view, ns, name);

  const routesP = panel('Routes', `sinew viz routes ${res} -n ${ns}`, { testid: 'routes-panel' });
  const routes = new Table([
    { title: 'Route', cell: (r) => r.route },
    { title: 'Authority', cell: (r) => r.authority },
    ...metricColumns,
  ], { testid: 'routes-table', key: (r) => `${r.route}\u0000${r.authority}`, empty: 'No routes with traffic in the last minute.' });
  routesP.body.append(h('div', { 'data-testid': 'routes' }, routes.el));

  // How the routes of the Services it calls split its requests: one block per Service route, a bar per backend.
  // Hidden while only default routes carry its traffic.
  const splitP = panel('Traffic split', `sinew viz routes ${res} -n ${ns} --to svc`, { testid: 'split-panel' });
  const split = new TrafficSplit(ns);
  splitP.body.append(h('p', { class: 'hint', text: `Each backend's share of ${res}'s requests on the routes of the Services it calls.` }), split.el);
  splitP.el.hidden = true;

  // What its inbound authorization admitted and denied, per server: a row per authorization, and one per server for
  // the requests it denied (no authorization). Success is per server: the proxies' response metrics know no
  // authorization.
  const authzP = panel('Servers and authorizations', `sinew viz authz ${res} -n ${ns}`, { testid: 'authz-panel' });
  const authz = new Table([
    { title: 'Server', cell: (r) => (r.serverKind === 'server' ? r.serverName : `${r.serverKind}:${r.serverName}`) },
    { title: 'Authorization', cell: (r) => (r.authorizationKind ? `${r.authorizationKind}/${r.authorizationName}` : { text: 'denied', cls: 'sr-bad' }) },
    { title: 'Allowed', num: true, cell: (r) => fmt.rps(r.rps) },
    { title: 'Denied', num: true, cell: (r) => fmt.rps(r.unauthorizedRps) },
    { title: 'Success', num: true, cell: (r) => srCell(r.success) },
  ], {
    testid: 'authz-table',
    key: (r) => [r.serverKind, r.serverName, r.authorizationKind || '', r.authorizationName || ''].join('\u0000'),
    empty: 'No authorization decisions in the last minute.',
  });
  authzP.body.append(authz.el);

  view.root.append(
    h('h1', {}, h('span', { class: 'kind', text: 'deploy/' }), h('span', { class: 'name', text: name }), h('span', { class: 'in', text: ` in ${ns}` })),
    summaryP.el, live.el,
    h('div', { class: 'pair' }, inP.el, outP.el),
    octoP.el, splitP.el, routesP.el, authzP.el);

  live.start();
  let self = null, callers = [], callees = [], edges = [];
  view.every(async () => {
    await Promise.all([
      load(summaryP, () => api('stat', { resource: res, namespace: ns }, view.signal), (b) => {
        self = (b.rows || [])[0] || null;
        showSummary(self);
      }),
      load(inP, () => api('stat', { resource: 'deploy', namespace: ns, to: res }, view.signal), (b) => {
        // Every workload of the namespace gets a row; those that sent nothing to this one are not its callers.
        callers = (b.rows || []).filter((r) => r.rps != null);
        inbound.update(callers);
      }),
      load(outP, () => api('stat', { resource: 'deploy', namespace: ns, from: res }, view.signal), (b) => {
        callees = (b.rows || []).filter((r) => r.rps != null);
        outbound.update(callees);
      }),
      load(octoP, () => api('edges', { kind: 'deploy', namespace: ns }, view.signal), (b) => {
        edges = (b.edges || []).filter((e) => (e.src === name && (e.srcNamespace || ns) === ns) || (e.dst === name && (e.dstNamespace || ns) === ns));
      }),
      load(routesP, () => api('routes', { resource: res, namespace: ns }, view.signal), (b) => routes.update(b.routes || [])),
      load(authzP, () => api('authz', { resource: res, namespace: ns }, view.signal), (b) => authz.update(b.rows || [])),
      load(splitP, () => api('routes', { resource: res, namespace: ns, to: 'svc' }, view.signal), (b) => {
        splitP.el.hidden = !split.update(b.routes || []);
      }),
    ]);
    if (view.signal.aborted) return;
    // Nodes carry their own inbound success rate where known: this workload's from stat, callees' from what this
    // workload saw of them, callers without one.
    const rows = [];
    if (self) rows.push({ ...self, namespace: self.namespace || ns, name });
    for (const r of callees) if (r.name !== name) rows.push({ ...r, namespace: r.namespace || ns });
    const g = graphFrom(ns, rows, edges, name);
    octopus.update(g.nodes, g.edges);
  });
}

// TrafficSplit draws backend route rows (api/routes with to=svc) as one block per Service route: its backends, each
// with a bar as wide as its share of the route's requests, the share and its golden metrics. update returns whether
// any route other than a default one has traffic; the DOM is rebuilt only when what it shows changed.
class TrafficSplit {
  constructor(ns) {
    this.ns = ns;
    this.sig = '';
    this.el = h('div', { class: 'split', 'data-testid': 'split' });
  }

  update(rows) {
    const groups = new Map();
    for (const r of rows) {
      if (!r.backend || r.routeKind === 'default' || r.route === '[DEFAULT]') continue;
      const svc = r.parentNamespace && r.parentNamespace !== this.ns ? `${r.parent}.${r.parentNamespace}` : r.parent;
      const route = `${r.routeKind}/${r.route}`;
      const k = `${svc}\u0000${route}`;
      if (!groups.has(k)) groups.set(k, { svc, route, backends: [] });
      groups.get(k).backends.push(r);
    }
    const shown = [...groups.values()].map((g) => ({
      svc: g.svc, route: g.route,
      backends: g.backends.map((b) => ({
        backend: b.backend, share: b.share == null ? null : Math.round(b.share * 1000) / 10, rpsValue: b.rps ?? '',
        success: fmt.pct(b.success), sr: health(b.success), rps: fmt.rps(b.rps), p50: fmt.ms(b.latencyMsP50), p99: fmt.ms(b.latencyMsP99),
      })),
    }));
    const sig = JSON.stringify(shown);
    if (sig !== this.sig) {
      this.sig = sig;
      this.el.replaceChildren(...shown.map((g) => h('div', { class: 'split-route', 'data-testid': 'split-route', dataset: { service: g.svc, route: g.route } },
        h('h3', {}, h('span', { class: 'name', text: g.svc }), h('span', { class: 'arrow', 'aria-hidden': 'true', text: ' → ' }), g.route),
        h('table', { class: 'split-backends' },
          h('thead', {}, h('tr', {}, ['Backend', 'Share', '', 'Success', 'RPS', 'P50', 'P99'].map((t, i) => h('th', { class: i > 0 && i !== 2 ? 'num' : null, scope: 'col', text: t })))),
          h('tbody', {}, g.backends.map((b) => h('tr', { 'data-testid': 'split-backend', dataset: { backend: b.backend, share: b.share ?? '', rps: b.rpsValue } },
            h('td', { text: b.backend }),
            h('td', { class: 'num', text: b.share == null ? '-' : `${b.share.toFixed(1)}%` }),
            h('td', { class: 'bar-cell' }, h('div', { class: 'bar', role: 'img', 'aria-label': `${b.share ?? 0}%` },
              h('div', { class: 'bar-fill', style: `width: ${Math.max(0, Math.min(100, b.share ?? 0))}%` }))),
            h('td', { class: `num sr-${b.sr}`, text: b.success }),
            h('td', { class: 'num', text: b.rps }),
            h('td', { class: 'num', text: b.p50 }),
            h('td', { class: 'num', text: b.p99 }))))))));
    }
    return shown.length > 0;
  }
}

function notFoundView(view, hash) {
  crumbs([{ text: 'not found' }]);
  view.root.append(h('h1', { text: 'Not found' }),
    h('p', {}, `Nothing lives at ${hash}. `, h('a', { href: '#/', text: 'Back to the namespaces.' })));
}

// ---------------------------------------------------------------------------------------------------------------
// Routing.

let current = null;

function route() {
  if (current) current.leave();
  const main = document.getElementById('view');
  main.replaceChildren();
  const view = new View(main);
  current = view;
  const hash = location.hash || '#/';
  let parts;
  try {
    parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    parts = null;
  }
  if (parts && parts.length === 0) namespacesView(view);
  else if (parts && parts.length === 2 && parts[0] === 'namespaces') namespaceView(view, parts[1]);
  else if (parts && parts.length === 4 && parts[0] === 'namespaces' && parts[2] === 'deploy') workloadView(view, parts[1], parts[3]);
  else notFoundView(view, hash);
  window.scrollTo(0, 0);
}

async function showVersion() {
  const el = document.querySelector('[data-testid=version]');
  try {
    const { body } = await api('version', {});
    el.textContent = `v${body.version} · ${body.mode}`;
    el.title = `Prometheus: ${body.prometheus || 'none'}`;
  } catch (e) {
    el.textContent = 'viz API unreachable';
    el.title = e.message;
    el.classList.add('sr-bad');
  }
}

window.addEventListener('hashchange', route);
route();
showVersion();
