// App benchmarks in a real window (run by scripts/bench-app.sh): launch → first results on a big case,
// and frame times while scrolling a long result list and a long replay. Baselines in the same run: the
// same steps on the small sample case. Prints one JSON object.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const require = createRequire(path.join(root, "ui/package.json"));
const { remote } = await import(pathToFileURL(require.resolve("webdriverio")).href);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function launch(caseDir) {
  const t0 = performance.now();
  const b = await remote({
    hostname: "127.0.0.1", port: 4444, logLevel: "error",
    capabilities: { browserName: "wry", "tauri:options": { application: process.env.NBTRAIL_APP, args: [caseDir] },
      "wdio:enforceWebDriverClassic": true },
  });
  await (await b.$("#sum-events")).waitForExist({ timeout: 300000, interval: 20 });
  return { b, homeMs: performance.now() - t0, t0 };
}

async function search(b, q) {
  await (await b.$('button.tab[data-view="search"]')).click();
  const box = await b.$("#query");
  if (q) await box.setValue(q); else await box.clearValue();
  const t = performance.now();
  await (await b.$("#search-btn")).click();
  await b.waitUntil(async () => (await b.execute((q) => {
    const s = document.querySelector(".summary");
    return s && s.getAttribute("data-query") === q && document.querySelectorAll(".hit:not(.loading)").length > 0;
  }, q)), { timeout: 120000, interval: 10 });
  return performance.now() - t;
}

// Scrolls a list by `step` px per animation frame for `frames` frames; returns frame-time stats (ms), and
// where each frame's time went. A frame runs: scroll event (the list's handler and Svelte's update of the
// DOM, in microtasks) → animation-frame callbacks → style and layout → paint. So `script` is from the scroll
// event's start (a capturing listener on the document, which runs first) to the start of our frame callback;
// `layout` is the style and layout the callback forces at once by reading a layout property; `rest` is what
// is left of the interval: paint, compositing, idle time and whatever else the engine does between frames.
async function scrollFrames(b, selector, step, frames) {
  const d = await b.executeAsync((sel, step, frames, done) => {
    const el = document.querySelector(sel);
    const deltas = [], script = [], layout = [];
    let last = performance.now(), n = 0, scrollAt = null;
    const onScroll = () => { if (scrollAt === null) scrollAt = performance.now(); };
    document.addEventListener("scroll", onScroll, { capture: true });
    function tick() {
      const now = performance.now();
      if (n > 0) {
        deltas.push(now - last);
        script.push(scrollAt === null ? 0 : now - scrollAt);
        void el.offsetHeight; // forces style + layout now
        layout.push(performance.now() - now);
      }
      scrollAt = null;
      last = now;
      if (n++ >= frames) {
        document.removeEventListener("scroll", onScroll, { capture: true });
        return done({ deltas, script, layout, rows: el.querySelectorAll(".vl-row").length, top: el.scrollTop });
      }
      el.scrollTop += step;
      requestAnimationFrame(tick);
    }
    requestAnimationFrame(tick);
  }, selector, step, frames);
  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(0.5 * s.length)]; };
  const s = [...d.deltas].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  // A frame interval (callback to callback) holds the previous callback's forced layout, that frame's paint,
  // then this frame's scroll handling.
  const rest = d.deltas.slice(1).map((x, i) => x - d.script[i + 1] - d.layout[i]);
  return { frames: s.length, p50: +q(0.5).toFixed(1), p95: +q(0.95).toFixed(1), max: +s[s.length - 1].toFixed(1),
    over_33ms: s.filter((x) => x > 33.4).length, dom_rows: d.rows, scrolled_px: Math.round(d.top),
    split_p50: { script: +median(d.script).toFixed(1), layout: +median(d.layout).toFixed(1), rest: +median(rest).toFixed(1) } };
}

async function openFirstSession(b) {
  await (await b.$('button.tab[data-view="replay"]')).click();
  const link = await b.$(".session-row button.link");
  await link.waitForExist({ timeout: 60000 });
  const t = performance.now();
  await link.click();
  await (await b.$("article.cell")).waitForExist({ timeout: 120000, interval: 10 });
  return performance.now() - t;
}

const out = { date: new Date().toISOString() };
for (const [name, dir, q] of [["sample", process.env.NBTRAIL_SAMPLE_CASE, "toPandas"], ["big", process.env.NBTRAIL_BIG_CASE, "toPandas"]]) {
  const { b, homeMs } = await launch(dir);
  try {
    const searchMs = await search(b, q);
    // A search with more hits than the list holds (100,000 slots) for the scrolling measurement.
    const all = await search(b, name === "big" ? "user:alice*" : "lang:python");
    const total = Number((await (await b.$("#total")).getText()).replace(/[^0-9]/g, ""));
    await sleep(500);
    // The app's own clock: ms from the page starting to load (WebKit up, before the UI's script runs) to
    // the case home and to the first results on screen (the harness's launch adds starting the process
    // and the WebDriver session).
    const marks = await b.execute(() => Object.fromEntries(["case-home", "first-results"].map((n) =>
      [n, performance.getEntriesByName(n)[0]?.startTime ?? null])));
    out[name] = {
      page_to_home_ms: Math.round(marks["case-home"]), page_to_first_results_ms: Math.round(marks["first-results"]),
      launch_to_home_ms: Math.round(homeMs), first_search_ms: Math.round(searchMs),
      launch_to_first_results_ms: Math.round(homeMs + searchMs), long_list_hits: total, long_list_search_ms: Math.round(all),
      scroll_hits: await scrollFrames(b, ".hits .vl-viewport", 600, 300),
    };
  } finally {
    await b.deleteSession();
  }
}
for (const [name, dir] of [["replay_small", process.env.NBTRAIL_SAMPLE_SESSION_CASE], ["replay_5000", process.env.NBTRAIL_LONG_CASE]]) {
  const { b } = await launch(dir);
  try {
    const openMs = await openFirstSession(b);
    await sleep(1000);
    const cells = await b.execute(() => document.querySelector(".cells .vl-viewport")?.getAttribute("data-rows"));
    out[name] = { cells: Number(cells), open_ms: Math.round(openMs), scroll: await scrollFrames(b, ".cells .vl-viewport", 400, 300) };
  } finally {
    await b.deleteSession();
  }
}
console.log(JSON.stringify(out, null, 2));
