// Measures the dashboard against a control plane that already holds many
// agents: the fleet page's first paint and the latency of a filter change,
// in Debian's Chromium. Prints one JSON object.
//   node scripts/bench/dashboard.mjs URL PASSWORD SEARCH_TERM [ROUNDS]
import { chromium } from '../../tests/browser/node_modules/playwright-core/index.mjs';

const [url, password, term, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 5);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
});
const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
const page = await context.newPage();
await page.goto(`${url}/`);
await page.getByTestId('signin-username').fill('admin');
await page.getByTestId('signin-password').fill(password);
await page.getByTestId('signin-submit').click();
await page.getByTestId('agent-row').first().waitFor({ timeout: 60000 });

const paints = [];
const fcps = [];
for (let i = 0; i < rounds; i++) {
  const t0 = Date.now();
  await page.goto(`${url}/`, { waitUntil: 'commit' });
  await page.getByTestId('agent-row').first().waitFor({ timeout: 60000 });
  paints.push(Date.now() - t0);
  const fcp = await page.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null);
  if (fcp !== null) fcps.push(Math.round(fcp));
}
const total = async () => (await page.getByTestId('fleet-total').textContent()).trim();
const filters = [];
for (let i = 0; i < rounds; i++) {
  const search = page.getByTestId('fleet-search');
  await search.fill('');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="agent-row"]').length > 1, null, { timeout: 30000 });
  const before = await total();
  const t0 = Date.now();
  await search.fill(`${term}${i}`);
  await page.waitForFunction(
    ([prev]) => {
      const t = document.querySelector('[data-testid="fleet-total"]')?.textContent?.trim();
      return t && t !== prev;
    },
    [before],
    { timeout: 30000 },
  );
  filters.push(Date.now() - t0);
}
const rows = await total();
await browser.close();
console.log(JSON.stringify({ first_paint_ms: { median: median(paints), all: paints }, first_contentful_paint_ms: fcps.length ? median(fcps) : null, filter_change_ms: { median: median(filters), all: filters }, last_total: rows }));
