// Drives a real JupyterLab behind JupyterHub in headless Chromium, as a user would: log in at the Hub,
// open Lab, create a notebook from the launcher, type each cell, run it with Shift+Enter and read what the
// cell shows. Usage: node drive_lab.mjs HUB_URL USER PASSWORD CELL... ; prints {"outputs": [...]} as JSON.
import { chromium } from "playwright-core";

const [hub, user, password, ...cells] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"],
});
const step = (what) => process.stderr.write(`drive_lab: ${what}\n`);
const page = await browser.newPage();
try {
  page.setDefaultTimeout(Number(process.env.DRIVE_LAB_TIMEOUT_MS ?? 90_000));
  step("log in");
  await page.goto(`${hub}/hub/login`);
  await page.fill("input[name=username]", user);
  await page.fill("input[name=password]", password);
  await Promise.all([page.waitForNavigation(), page.click("#login_submit")]);
  step("open lab");
  await page.goto(`${hub}/user/${user}/lab?reset`);
  const card = page.locator('.jp-LauncherCard[data-category="Notebook"]').first();
  await card.waitFor();
  await card.click();
  await page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell .cm-content").first().waitFor();
  // The kernel must be connected and idle before the first run: a cell run before Lab has a kernel for
  // the notebook is silently not run. The status bar says "… | Idle" then.
  await page.waitForFunction(() => /\|\s*Idle/.test(document.querySelector(".jp-StatusBar-Widget, #jp-main-statusbar")?.textContent ?? ""))
    .catch(() => step("status bar never said Idle; going on"));
  const outputs = [];
  for (const [i, code] of cells.entries()) {
    step(`cell ${i + 1}`);
    const cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(i);
    const editor = cell.locator(".cm-content");
    await editor.click();
    await page.keyboard.insertText(code);
    // Wait until the cell shows what was typed before running it (otherwise the run can be lost).
    const firstLine = code.split("\n")[0];
    await page.waitForFunction(
      ([idx, text]) => {
        const c = document.querySelectorAll(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")[idx];
        return c && c.querySelector(".cm-content")?.textContent.includes(text);
      },
      [i, firstLine],
    );
    // Run it; if the prompt still shows no run (`[ ]`: Lab had no kernel yet), run it again. A cell
    // that started (`[*]`) or ran (`[n]`) is never sent twice.
    const prompt = (idx) => {
      const c = document.querySelectorAll(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")[idx];
      return c?.querySelector(".jp-InputPrompt")?.textContent ?? "";
    };
    for (let attempt = 1; ; attempt++) {
      await editor.click();
      await page.keyboard.press("Shift+Enter");
      const started = await page.waitForFunction((idx) => {
        const c = document.querySelectorAll(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")[idx];
        return /\[(\*|\d+)\]/.test(c?.querySelector(".jp-InputPrompt")?.textContent ?? "");
      }, i, { timeout: 15_000 }).then(() => true, () => false);
      if (started) break;
      step(`cell ${i + 1} did not start (prompt ${JSON.stringify(await page.evaluate(prompt, i))}); attempt ${attempt + 1}`);
      if (attempt >= 6) throw new Error(`cell ${i + 1} never ran`);
    }
    // Done when the prompt shows an execution count.
    await page.waitForFunction((idx) => {
      const c = document.querySelectorAll(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")[idx];
      return /\[\d+\]/.test(c?.querySelector(".jp-InputPrompt")?.textContent ?? "");
    }, i);
    outputs.push(await cell.locator(".jp-OutputArea").innerText().catch(() => ""));
  }
  process.stdout.write(JSON.stringify({ outputs }) + "\n");
} catch (e) {
  if (process.env.DRIVE_LAB_SCREENSHOT) await page.screenshot({ path: process.env.DRIVE_LAB_SCREENSHOT }).catch(() => {});
  throw e;
} finally {
  await browser.close();
}
