// The dashboard in a real Chromium against a real control plane and agent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startControlPlane, startAgent, launchBrowser, withPage, eventually, bin, signIn } from '../harness.mjs';

let cp;
let agent;
let browser;

before(async () => {
  cp = await startControlPlane();
  agent = await startAgent(cp, { hostname: 'browser-host', labels: { env: 'test' } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  agent?.stop();
  cp?.stop();
  agent?.cleanup();
  cp?.cleanup();
});

test('sign in, see the agent online, watch its CPU chart move, sign out', async () => {
  await withPage(browser, 'signin-live-logout', async (page, errors) => {
    await signIn(page, cp);
    const row = page.locator(`[data-testid="agent-row"][data-agent-id="${agent.id}"]`);
    await row.waitFor({ timeout: 15000 });
    await eventually('the agent to show online', async () => (await row.getByTestId('status-badge').textContent())?.toLowerCase().includes('online'), 15000);
    assert.ok((await row.textContent()).includes('browser-host'));

    await row.getByTestId('agent-hostname').click();
    await page.getByTestId('agent-page').waitFor();
    const chart = page.getByTestId('chart-cpu');
    await chart.waitFor();
    const lastTs = async () => Number(await chart.getAttribute('data-last-ts')) || 0;
    const first = await eventually('the CPU chart to have points', async () => (await lastTs()) || null, 15000);
    const started = Date.now();
    await eventually('new CPU points', async () => (await lastTs()) > first, 5000);
    assert.ok(Date.now() - started <= 5000);
    assert.ok(Number(await chart.getAttribute('data-points')) > 1);

    await page.getByTestId('logout').click();
    await page.getByTestId('signin-form').waitFor();
    // The session is gone on the server too.
    const me = await page.evaluate(async () => (await fetch('/api/v1/auth/me')).status);
    assert.equal(me, 401);
    await page.goto(`${cp.url}/`);
    await page.getByTestId('signin-form').waitFor();
    assert.deepEqual(errors, []);
  });
});

test('create a join token and copy its command', async () => {
  await withPage(
    browser,
    'token-copy',
    async (page) => {
      await signIn(page, cp);
      await page.getByTestId('fleet-list').waitFor();
      await page.goto(`${cp.url}/enroll`);
      await page.getByTestId('token-form').waitFor();
      await page.getByTestId('token-uses').fill('3');
      await page.getByTestId('token-labels').fill('env=staging');
      await page.getByTestId('token-create').click();
      await page.getByTestId('token-created').waitFor();
      const command = (await page.getByTestId('enroll-command').textContent()).trim();
      assert.match(command, /sovereign-agent enroll --server https:\/\/\S+ --token sovj_[0-9a-f]{64} --ca-sha256 [0-9a-f]{64}/);
      await page.getByTestId('copy-command').click();
      await eventually('the copy confirmation', async () => (await page.getByTestId('copy-status').textContent())?.length > 0, 5000);
      const copied = await page.evaluate(() => navigator.clipboard.readText());
      assert.equal(copied.trim(), command);
      const tokens = await cp.api('GET', '/tokens');
      assert.ok(tokens.body.some((t) => t.uses_total === 3 && t.labels.env === 'staging'));
    },
    { permissions: ['clipboard-read', 'clipboard-write'] },
  );
});

test('a wrong password shows an error and the sixth attempt is locked out', async () => {
  const out = execFileSync(bin('sovereign'), ['admin', 'create', '--username', 'locky', '--role', 'viewer', '--data-dir', cp.data], { encoding: 'utf8' });
  const password = /\(shown once\): (\S+)/.exec(out)[1];
  await withPage(browser, 'lockout', async (page) => {
    for (let i = 1; i <= 5; i++) {
      await signIn(page, cp, 'locky', `not the password ${i}`);
      const error = page.getByTestId('signin-error');
      await error.waitFor();
      assert.match(await error.textContent(), /wrong username or password/i);
    }
    await signIn(page, cp, 'locky', password);
    const error = page.getByTestId('signin-error');
    await eventually('the lockout message', async () => /try again in 15 minute/i.test(await error.textContent()), 5000);
    assert.equal(await page.getByTestId('fleet-list').count(), 0);
  });
});

test('hostile hostnames and labels are shown as plain text and never run', async () => {
  const payloadHost = '<img src=x onerror="window.__pwned=1">';
  const payloadLabel = '<script>window.__pwned=2</script><b>bold</b>';
  const hostile = await startAgent(cp, { hostname: payloadHost, labels: { note: payloadLabel } });
  try {
    await withPage(browser, 'xss', async (page, errors) => {
      const dialogs = [];
      page.on('dialog', (d) => {
        dialogs.push(d.message());
        d.dismiss();
      });
      await signIn(page, cp);
      const row = page.locator(`[data-testid="agent-row"][data-agent-id="${hostile.id}"]`);
      await row.waitFor({ timeout: 15000 });
      assert.ok((await row.textContent()).includes(payloadHost), 'the hostname is shown literally');
      assert.ok((await row.textContent()).includes(payloadLabel), 'the label is shown literally');
      await row.getByTestId('agent-hostname').click();
      await page.getByTestId('agent-page').waitFor();
      await eventually('the agent title', async () => (await page.getByTestId('agent-title').textContent())?.includes(payloadHost), 10000);
      assert.ok((await page.getByTestId('labels-view').textContent()).includes(payloadLabel));
      assert.equal(await page.locator('img[src="x"]').count(), 0, 'no injected element exists');
      assert.equal(await page.locator('b:text("bold")').count(), 0);
      assert.equal(await page.evaluate(() => window.__pwned), undefined, 'nothing executed');
      assert.deepEqual(dialogs, []);
      assert.deepEqual(errors, []);
    });
  } finally {
    hostile.stop();
    hostile.cleanup();
  }
});
