// Drives the viz dashboard of a running `sinew demo` in Chromium, as a user would: the emojivoto namespace's
// topology, then a click through to deploy/web and its live calls. Prints one JSON summary on stdout for
// test/integration/dashboard_browser_test.go to check; progress and failures go to stderr.
//
// Environment: SINEW_VIZ_URL (the dashboard, e.g. http://127.0.0.1:17006), SINEW_SCREENSHOT (where to write the
// full-page PNG), CHROMIUM (default /usr/bin/chromium), SINEW_NAMESPACE (default emojivoto), SINEW_EXPECT_SPLIT
// (set: the demo runs with a route that splits voting-svc; wait for web's traffic split and report it).
import { chromium } from 'playwright-core';

const base = (process.env.SINEW_VIZ_URL || '').replace(/\/$/, '');
const shot = process.env.SINEW_SCREENSHOT;
const ns = process.env.SINEW_NAMESPACE || 'emojivoto';
if (!base || !shot) {
  console.error('SINEW_VIZ_URL and SINEW_SCREENSHOT must be set');
  process.exit(2);
}
const log = (...a) => console.error(`[dashboard ${new Date().toISOString().slice(11, 23)}]`, ...a);

const summary = { url: base, namespace: ns, pageErrors: [], consoleErrors: [] };
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
let page;
try {
  page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  page.on('pageerror', (e) => summary.pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') summary.consoleErrors.push(m.text()); });

  // The namespace view: the graph shows the three emojivoto workloads once Prometheus has their traffic.
  log('opening', `${base}/#/namespaces/${ns}`);
  await page.goto(`${base}/#/namespaces/${ns}`);
  const topo = page.locator('svg[data-testid=topology]');
  const node = (name) => topo.locator(`g[data-testid=node][data-name="${name}"]`);
  for (const name of ['web', 'voting', 'emoji']) {
    await node(name).waitFor({ timeout: 90_000 });
    log('node', name);
  }
  // Voting fails every doughnut vote, so its success rate drops below 100 % once such a vote is in the window.
  await page.waitForFunction((sel) => {
    const v = parseFloat(document.querySelector(sel)?.dataset.success);
    return v < 1;
  }, `svg[data-testid=topology] g[data-testid=node][data-name="voting"]`, { timeout: 120_000, polling: 500 });
  // Each proxy is scraped on its own schedule, so web's outbound series (the web → voting edge) can trail voting's
  // inbound ones by a scrape; the page refreshes, so wait for the edge rather than read the graph at one instant.
  await topo.locator('g[data-testid=edge][data-src="web"][data-dst="voting"]').waitFor({ timeout: 60_000 })
    .catch(() => log('no web → voting edge after 60 s'));
  summary.nodes = await topo.locator('g[data-testid=node]').evaluateAll((gs) => gs.map((g) => ({
    name: g.dataset.name, success: g.dataset.success === '' ? null : Number(g.dataset.success), text: g.textContent,
  })));
  summary.edges = await topo.locator('g[data-testid=edge]').evaluateAll((gs) => gs.map((g) => ({
    src: g.dataset.src, dst: g.dataset.dst, secured: g.dataset.secured === 'true', label: g.querySelector('text')?.textContent,
  })));
  summary.votingSuccess = summary.nodes.find((n) => n.name === 'voting')?.success;
  summary.workloads = await page.locator('table[data-testid=workloads] tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  summary.namespaceCLI = await page.locator('code[data-testid=cli]').allTextContents();
  summary.namespaceErrors = (await page.locator('[data-testid=error]:visible').allTextContents());
  log('voting success', summary.votingSuccess);

  // Click through to web's own page.
  await node('web').locator('a').click();
  await page.waitForURL(`**/#/namespaces/${ns}/deploy/web`, { timeout: 10_000 });
  summary.workloadURL = page.url();
  log('on', summary.workloadURL);

  // Live calls: rows appear, and their counts keep growing while the vote-bot votes.
  const rows = page.locator('table[data-testid=live-calls] tbody tr');
  await rows.first().waitFor({ timeout: 60_000 });
  const total = () => rows.evaluateAll((trs) => trs.reduce((n, tr) => n + Number(tr.dataset.count || 0), 0));
  summary.countFirst = await total();
  await page.waitForFunction(({ sel, first }) => {
    const n = [...document.querySelectorAll(sel)].reduce((s, tr) => s + Number(tr.dataset.count || 0), 0);
    return n > first;
  }, { sel: 'table[data-testid=live-calls] tbody tr', first: summary.countFirst }, { timeout: 30_000, polling: 250 });
  summary.countLater = await total();
  summary.liveCalls = await rows.evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  summary.liveHeader = await page.locator('table[data-testid=live-calls] thead th').allTextContents();
  summary.tapStatus = await page.locator('[data-testid=tap-status]').textContent();
  log('live calls', summary.countFirst, '→', summary.countLater);

  // The traffic split of the routes web calls: the demo's route on voting-svc sends a share of the votes to the
  // Service voting-canary. It appears once Prometheus has both backends' responses in its window.
  if (process.env.SINEW_EXPECT_SPLIT) {
    // Wait for both backends and at least 60 responses in the one-minute window, so that the shares are measured
    // rather than the first few votes (the vote-bot sends about one a second).
    await page.waitForFunction(() => {
      const trs = [...document.querySelectorAll('[data-testid=split-panel]:not([hidden]) [data-testid=split-backend]')];
      return trs.length >= 2 && trs.reduce((n, tr) => n + Number(tr.dataset.rps || 0), 0) * 60 >= 60;
    }, null, { timeout: 150_000, polling: 500 });
    summary.split = await page.locator('[data-testid=split-route]').evaluateAll((gs) => gs.map((g) => ({
      service: g.dataset.service, route: g.dataset.route, heading: g.querySelector('h3')?.textContent,
      backends: [...g.querySelectorAll('[data-testid=split-backend]')].map((tr) => ({
        backend: tr.dataset.backend, share: tr.dataset.share === '' ? null : Number(tr.dataset.share),
        cells: [...tr.cells].map((c) => c.textContent),
        barWidth: tr.querySelector('.bar-fill')?.getBoundingClientRect().width, barMax: tr.querySelector('.bar')?.getBoundingClientRect().width,
      })),
    })));
    summary.splitCLI = await page.locator('[data-testid=split-panel] code[data-testid=cli]').textContent();
    log('split', JSON.stringify(summary.split));
  }

  // Wait for the workload's own metrics and its callers to be in before the picture.
  await page.waitForFunction(() => {
    const tiles = [...document.querySelectorAll('[data-testid=summary] .tile-value')];
    return tiles.length > 0 && tiles[1].textContent !== '-' && document.querySelector('table[data-testid=inbound] tbody tr');
  }, null, { timeout: 30_000, polling: 250 });
  summary.workloadCLI = await page.locator('code[data-testid=cli]').allTextContents();
  summary.workloadErrors = await page.locator('[data-testid=error]:visible').allTextContents();
  summary.routesText = await page.locator('[data-testid=routes-panel]').textContent();
  await page.screenshot({ path: shot, fullPage: true });
  summary.screenshot = shot;

  // Stop really stops the stream.
  await page.locator('[data-testid=tap-toggle]').click();
  await page.waitForFunction(() => document.querySelector('[data-testid=tap-status]')?.textContent === 'stopped', null, { timeout: 5_000 });
  summary.stopped = true;
} catch (e) {
  summary.failure = String(e && e.stack ? e.stack : e);
  if (page) {
    const failShot = shot.replace(/\.png$/, '') + '-failure.png';
    await page.screenshot({ path: failShot, fullPage: true }).catch(() => {});
    summary.failureScreenshot = failShot;
    summary.failureText = await page.locator('main').innerText().catch(() => '');
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(summary));
process.exit(summary.failure ? 1 : 0);
