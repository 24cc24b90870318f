// End-to-end test of the desktop app in a real Tauri window (WebKitGTK), driven through tauri-driver +
// WebKitWebDriver. Run by tests/e2e/run.sh (which builds the app and the cases and starts Xvfb and the
// driver). Screenshots of each view go to target/e2e-screenshots/ (NBTRAIL_SHOTS=docs/screenshots refreshes
// the README's images).
//
// Story: open the sample case, search `secrets.get`, open the hit's session, see the finding's sink marked,
// jump along its trace to the source cell, triage it, add it to the basket, export, verify. Then a case
// whose cells and notebook names carry <script>, <img onerror> and ANSI escapes: shown as text, no script runs.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import path from "node:path";
import fs from "node:fs";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const require = createRequire(path.join(root, "ui/package.json"));
const { remote } = await import(pathToFileURL(require.resolve("webdriverio")).href);

const APP = process.env.NBTRAIL_APP;
const SAMPLE = process.env.NBTRAIL_SAMPLE_CASE;
const EVIL = process.env.NBTRAIL_EVIL_CASE;
const OUT = process.env.NBTRAIL_E2E_OUT;
const SHOTS = path.resolve(root, process.env.NBTRAIL_SHOTS ?? "target/e2e-screenshots");
fs.mkdirSync(SHOTS, { recursive: true });

async function session(caseDir) {
  return remote({
    hostname: "127.0.0.1",
    port: 4444,
    logLevel: "error",
    capabilities: {
      browserName: "wry",
      "tauri:options": { application: APP, args: [caseDir] },
      "wdio:enforceWebDriverClassic": true,
    },
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let passed = 0;
function ok(what) { passed++; console.log(`ok - ${what}`); }

// The X screen as the user sees it (ImageMagick's import on the Xvfb display; the window fills it).
async function shot(_b, name) {
  await sleep(800);
  execFileSync("import", ["-window", "root", path.join(SHOTS, `${name}.png`)]);
}

// Waits until `fn` (run in the page) is true.
async function browserWait(b, fn, what, timeout = 20000) {
  await b.waitUntil(async () => Boolean(await b.execute(fn)), { timeout, timeoutMsg: `timed out: ${what}` });
}

async function tab(b, view) {
  await (await b.$(`button.tab[data-view="${view}"]`)).click();
  await sleep(200);
}

// ---- the incident story on the sample case ----------------------------------------------------------
{
  const b = await session(SAMPLE);
  try {
    const events = await b.$("#sum-events");
    await events.waitForExist({ timeout: 30000 });
    const n = Number((await events.getText()).replace(/[^0-9]/g, ""));
    assert.ok(n > 1000, `case home shows the events (${n})`);
    assert.ok(Number(await (await b.$("#sum-high")).getText()) > 0, "high findings on the home");
    ok(`case home: ${n} events`);
    await shot(b, "home");

    await tab(b, "search");
    const q = await b.$("#query");
    // A broad search first: facets and the histogram, for the screenshot.
    await q.setValue("lang:python");
    await (await b.$("#search-btn")).click();
    await b.waitUntil(async () => (await b.$$(".histogram rect")).length > 1, { timeout: 20000 });
    assert.ok((await b.$$("button.facet")).length > 3, "facets listed");
    await shot(b, "search");
    await q.setValue("secrets.get");
    await (await b.$("#search-btn")).click();
    await (await b.$("#total")).waitForExist({ timeout: 20000 });
    const total = Number((await (await b.$("#total")).getText()).replace(/[^0-9]/g, ""));
    assert.ok(total > 0, "secrets.get has hits");
    const marks = await b.$$(".snippet mark");
    assert.ok(marks.length > 0, "snippets have marked matches");
    ok(`search secrets.get: ${total} hits`);

    // The secrets.get cell (the hit with a session): its session holds the leak it started.
    const hit = await b.$(".hit .open-session");
    await hit.waitForExist({ timeout: 5000 });
    await hit.click();
    await (await b.$("article.cell")).waitForExist({ timeout: 20000 });
    const sink = await b.$("article.cell .mark.sink");
    await sink.waitForExist({ timeout: 20000 });
    const sinkText = await sink.getText();
    assert.ok(sinkText.length > 0, "the sink span is marked");
    ok(`replay: finding sink marked (${JSON.stringify(sinkText)})`);
    await shot(b, "replay");

    // Jump to the first trace step: its cell becomes the selected one and the step's span is active.
    const finding = await b.$(".finding");
    const fid = await finding.getAttribute("data-finding");
    const step0 = await b.$(`.finding[data-finding="${fid}"] .trace-step[data-step="0"]`);
    await step0.click();
    await sleep(800);
    const active = await b.$(".mark.active");
    await active.waitForExist({ timeout: 10000 });
    const activeCell = await b.execute(() => document.querySelector(".mark.active")?.closest("article")?.getAttribute("data-event"));
    const selectedCell = await b.execute(() => document.querySelector("article.cell.selected")?.getAttribute("data-event"));
    assert.equal(activeCell, selectedCell, "the trace step's cell is selected");
    ok(`trace step 0 jumps to cell ${selectedCell}`);

    // Triage and basket from the inline finding.
    const sel = await b.$(`.finding[data-finding="${fid}"] select`);
    await sel.selectByAttribute("value", "valid");
    await sleep(500);
    await (await b.$(`.finding[data-finding="${fid}"] button.add-basket`)).click();
    await sleep(200);

    await tab(b, "findings");
    // The case has dozens of findings and detections: narrow the list to what was just triaged.
    await (await b.$("select[aria-label='triage status']")).selectByAttribute("value", "valid");
    await (await b.$(`.finding-row[data-finding="${fid}"]`)).waitForExist({ timeout: 10000 });
    const status = await b.execute((id) => document.querySelector(`.finding-row[data-finding="${id}"] select`)?.value, fid);
    assert.equal(status, "valid", "triage persisted");
    ok("triage recorded");
    await shot(b, "findings");

    await tab(b, "basket");
    assert.ok((await b.$$(".basket-items li")).length >= 1, "basket has the finding's cell");
    await (await b.$("#examiner")).setValue("E2E Examiner");
    await (await b.$("#notes")).setValue("end-to-end test");
    await (await b.$("#output")).setValue(OUT);
    await (await b.$("#export-btn")).click();
    await (await b.$("#export-report")).waitForExist({ timeout: 60000 });
    assert.ok(fs.existsSync(OUT), "bundle written");
    ok("export");
    await (await b.$("#verify-btn")).click();
    const verdict = await b.$("#verdict");
    await verdict.waitForExist({ timeout: 30000 });
    assert.match(await verdict.getText(), /^VERIFIED.*pinned as/s, "own key counts as pinned");
    ok("verify");
    await shot(b, "basket");

    // Entity page (issue 19): from a search hit's user to her page — detections, sessions — and on to a replay.
    await tab(b, "search");
    await (await b.$("#query")).setValue("secrets.get");
    await (await b.$("#search-btn")).click();
    await (await b.$("#total")).waitForExist({ timeout: 20000 });
    const userLink = await b.$(".hit .entity-link[data-kind='user']");
    await userLink.waitForExist({ timeout: 10000 });
    const userName = await userLink.getText();
    await userLink.click();
    await (await b.$(".entity[data-kind='user'] .entity-findings")).waitForExist({ timeout: 20000 });
    const detections = await b.execute(() =>
      Array.from(document.querySelectorAll(".entity-findings .finding-row b")).map((e) => e.textContent));
    assert.ok(detections.some((r) => r.startsWith("NBE")), `event detections on ${userName}'s page: ${detections}`);
    assert.ok(detections.some((r) => r.startsWith("NBT")), "analyzer findings too");
    ok(`user page of ${userName}: ${detections.length} findings and detections`);
    await shot(b, "user");
    await b.execute(() => {
      const li = Array.from(document.querySelectorAll(".entity-sessions li")).find((l) => l.querySelector(".warn"));
      li.querySelector(".open-session").click();
    });
    await (await b.$("article.cell")).waitForExist({ timeout: 20000 });
    ok("user page → session replay");
    // Star the session (a case note in the custody log); the home view lists it.
    const sessionStar = await b.$(".replay-head .star");
    await sessionStar.click();
    await browserWait(b, () => document.querySelector(".replay-head .star")?.textContent === "★", "session starred");
    await tab(b, "home");
    await browserWait(b, () => /starred:.*session:/.test(document.querySelector(".case-notes .starred")?.textContent ?? ""), "star listed on home");
    ok("session starred from the replay, listed in the case notes");

    // Event detections on the search timeline: a mark lists its bucket's detection events.
    await tab(b, "search");
    await (await b.$("#query")).setValue("secrets.get OR download*");
    await (await b.$("#search-btn")).click();
    const mark = await b.$(".detection-mark");
    await mark.waitForExist({ timeout: 20000 });
    const codes = (await mark.getAttribute("data-codes")).split(" ");
    await mark.click();
    await browserWait(b, () => /^\(rule:/.test(document.querySelector(".summary")?.getAttribute("data-query") ?? ""), "detection query ran");
    const hitRules = await b.execute(() => Array.from(document.querySelectorAll(".hit")).map((h) =>
      Array.from(h.querySelectorAll(".rule")).map((r) => r.textContent)));
    assert.ok(hitRules.length > 0, "the mark's bucket has events");
    assert.ok(hitRules.every((rs) => rs.some((r) => codes.includes(r))), `every hit carries one of ${codes}: ${JSON.stringify(hitRules)}`);
    ok(`detections on the timeline: ${codes.join(", ")} → ${hitRules.length} event(s)`);
    await shot(b, "search-detections");
  } finally {
    await b.deleteSession();
  }
}

// ---- hostile content ----------------------------------------------------------------------------------
{
  const b = await session(EVIL);
  try {
    await (await b.$("#sum-events")).waitForExist({ timeout: 30000 });
    await tab(b, "search");
    await (await b.$("#query")).setValue("alert");
    await (await b.$("#search-btn")).click();
    await (await b.$("#total")).waitForExist({ timeout: 20000 });
    await (await b.$(".hit .open-session")).click();
    await (await b.$("article.cell")).waitForExist({ timeout: 20000 });
    await sleep(1500);
    const text = await b.execute(() => document.body.innerText);
    assert.ok(text.includes("<script>window.__pwned = 1</script>"), "script tag shown as text");
    assert.ok(text.includes("<img src=x onerror=\"window.__pwned = 2\">"), "img tag shown as text");
    assert.ok(text.includes("\u241b[31m"), "ANSI escape shown as a control picture");
    const pwned = await b.execute(() => window.__pwned);
    assert.equal(pwned ?? null, null, "no injected script ran");
    const injected = await b.execute(() => document.querySelectorAll("img[src='x'], main script").length);
    assert.equal(injected, 0, "no element was created from log content");
    ok("hostile cells render as literal text; nothing ran");
    await shot(b, "hostile");
  } finally {
    await b.deleteSession();
  }
}
console.log(`e2e: ${passed} passed`);
