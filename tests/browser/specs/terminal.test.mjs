// The browser terminal in a real Chromium: open it from the agent page,
// type a command, see the answer, and follow a window resize.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startControlPlane, startAgent, launchBrowser, withPage, eventually, signIn } from '../harness.mjs';

let cp;
let agent;
let browser;

before(async () => {
  cp = await startControlPlane();
  agent = await startAgent(cp, { hostname: 'term-host' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  agent?.stop();
  cp?.stop();
  agent?.cleanup();
  cp?.cleanup();
});

test('open a terminal, run a command, resize the window', async () => {
  await withPage(browser, 'terminal', async (page, errors) => {
    await signIn(page, cp);
    await page.getByTestId('fleet-list').waitFor();
    await page.goto(`${cp.url}/agents/${agent.id}`);
    await page.getByTestId('open-terminal').click();
    const status = page.getByTestId('terminal-status');
    await eventually('the terminal to attach', async () => (await status.getAttribute('data-state')) === 'attached', 15000);
    const screen = async () => (await page.locator('[data-testid="terminal"] .xterm-rows').textContent()) ?? '';
    const term = page.getByTestId('terminal');
    await term.click();

    const tag = Math.random().toString(16).slice(2, 10);
    // The shell computes 6*7, so the answer differs from what was typed.
    await page.keyboard.type(`echo hello-$((6*7))-${tag}`);
    await page.keyboard.press('Enter');
    await eventually('the answer on screen', async () => (await screen()).includes(`hello-42-${tag}`), 10000);

    const size = async (marker) => {
      await page.keyboard.type(`echo size-${marker}-$(stty size | tr ' ' x)-end`);
      await page.keyboard.press('Enter');
      return eventually(`stty size ${marker}`, async () => {
        const m = new RegExp(`size-${marker}-(\\d+)x(\\d+)-end`).exec(await screen());
        return m ? { rows: Number(m[1]), cols: Number(m[2]) } : null;
      }, 10000);
    };
    const before = await size('a');
    await page.setViewportSize({ width: 900, height: 600 });
    await page.keyboard.press('Control+L');
    const afterResize = await eventually('the PTY to follow the resize', async () => {
      const s = await size(`b${Math.random().toString(16).slice(2, 6)}`);
      return s.cols < before.cols ? s : null;
    }, 20000);
    assert.ok(afterResize.cols < before.cols, `cols ${before.cols} -> ${afterResize.cols}`);
    assert.deepEqual(errors, []);
  });
});
