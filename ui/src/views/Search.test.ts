import { afterEach, describe, expect, it } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import { tick } from "svelte";
import Search from "./Search.svelte";
import { app } from "../lib/store.svelte";
import type { SearchResult } from "../lib/ipc";

const evil = "<script>alert(1)</script><img src=x onerror=alert(2)>";

// Typed with the generated bindings: a change to the Rust `SearchResult` breaks this fixture's type check.
function result(query: string): SearchResult {
  return {
    total: 2,
    hits: [
      { event_id: 11, session_id: "s1", user: "alice@example.com", time: "2024-05-01T14:00:00.000Z", time_ms: 1714572000000,
        action: "notebook.runCommand", notebook_path: "/Users/alice/" + evil, rules: ["NBT001"],
        snippet: { text: `key = dbutils.secrets.get("s", "k") ${evil}`, ranges: [[6, 25]] } },
      { event_id: 12, session_id: null, user: "bob@example.com", time: "2024-05-01T13:00:00.000Z", time_ms: 1714568400000,
        action: "secrets.getSecret", notebook_path: null, rules: [], snippet: { text: "getSecret", ranges: [] } },
    ],
    facets: { user: [{ value: "alice@example.com", count: 1 }, { value: "bob@example.com", count: 1 }] },
    histogram: { interval_ms: 3600000, buckets: [{ start_ms: 1714568400000, count: 1 }, { start_ms: 1714572000000, count: 1 }] },
    warnings: query.includes("((") ? ["unbalanced parenthesis ignored"] : [],
  };
}

afterEach(() => { cleanup(); clearMocks(); });

describe("Search view", () => {
  it("sends the query, renders hits as text with marked matches, and filters on facet click", async () => {
    const calls: { query: string; offset: number }[] = [];
    mockIPC((cmd, args) => {
      if (cmd === "search") {
        const a = (args as { args: { query: string; offset: number } }).args;
        calls.push(a);
        return result(a.query);
      }
      return null;
    });
    render(Search);
    const box = screen.getByLabelText("query") as HTMLInputElement;
    await fireEvent.input(box, { target: { value: "secrets.get ((" } });
    await fireEvent.submit(box.form!);
    await new Promise((r) => setTimeout(r, 0));
    await tick();
    expect(calls[0]).toMatchObject({ query: "secrets.get ((", offset: 0 });
    expect(document.getElementById("total")!.textContent).toBe("2");
    expect(screen.getByText(/ignored: unbalanced/)).toBeTruthy();
    // Untrusted text stays text: no script or img element was created from it.
    expect(document.querySelector("script")).toBeNull();
    expect(document.querySelector(".hit img")).toBeNull();
    expect(document.body.textContent).toContain(evil);
    const marks = [...document.querySelectorAll(".snippet mark")].map((m) => m.textContent);
    expect(marks).toEqual(["dbutils.secrets.get"]);
    // Facet click narrows the query.
    const facet = [...document.querySelectorAll("button.facet")].find((b) => b.textContent === "bob@example.com")!;
    await fireEvent.click(facet);
    await new Promise((r) => setTimeout(r, 0));
    expect(calls.at(-1)!.query).toBe("secrets.get (( user:bob@example.com");
    expect(app.history[0]).toBe("secrets.get (( user:bob@example.com");
  });

  it("shows bidirectional formatting characters as escapes, never obeyed (Trojan Source)", async () => {
    const sneaky = "mallory\u202e@example.com";
    let sent = "";
    mockIPC((cmd, args) => {
      if (cmd !== "search") return null;
      sent = (args as { args: { query: string } }).args.query;
      const r = result(sent);
      r.hits[0].user = sneaky;
      r.hits[0].notebook_path = "/Users/m/\u2066admin\u2069";
      r.hits[0].snippet = { text: "x = '\u202e' + secrets.get()", ranges: [[10, 21]] };
      r.facets.user = [{ value: sneaky, count: 1 }];
      return r;
    });
    render(Search);
    const box = screen.getByLabelText("query") as HTMLInputElement;
    await fireEvent.submit(box.form!);
    await new Promise((r) => setTimeout(r, 0));
    await tick();
    const text = document.body.textContent!;
    for (const c of ["\u202e", "\u2066", "\u2069"]) expect(text).not.toContain(c);
    expect(text).toContain("mallory\\u{202e}@example.com");
    expect(text).toContain("/Users/m/\\u{2066}admin\\u{2069}");
    expect([...document.querySelectorAll(".snippet mark")].map((m) => m.textContent)).toEqual(["secrets.get"]);
    // The facet shows the escape but filters on the real value.
    const facet = [...document.querySelectorAll("button.facet")].find((b) => b.textContent!.startsWith("mallory"))!;
    await fireEvent.click(facet);
    await new Promise((r) => setTimeout(r, 0));
    expect(sent).toContain(`user:${sneaky}`);
  });

  it("shows a command's {kind, message} error", async () => {
    mockIPC(() => { throw { kind: "no_case", message: "no case is open" }; });
    render(Search);
    const box = screen.getByLabelText("query") as HTMLInputElement;
    await fireEvent.submit(box.form!);
    await new Promise((r) => setTimeout(r, 0));
    expect(app.error).toEqual({ kind: "no_case", message: "no case is open" });
  });
  it("shows the query help from the one source the CLI prints, every field included", async () => {
    mockIPC(() => null);
    render(Search);
    await fireEvent.click(screen.getByRole("button", { name: "?" }));
    const help = document.querySelector(".help")!.textContent!;
    for (const f of ["user:", "cluster:", "workspace:", "id:", "rule:", "session:", "output:"]) {
      expect(help).toContain(f);
    }
    expect(help).toContain("All times are UTC.");
  });
  it("draws event detections over the histogram and lists a bucket's detection events on click", async () => {
    const sent: string[] = [];
    mockIPC((cmd, args) => {
      if (cmd === "detection_marks") {
        // The shell buckets detections for the histogram it was given (nbtrail_ops::detection_marks).
        const a = args as { firstMs: number; intervalMs: number; buckets: number };
        expect(a).toEqual({ firstMs: 1714568400000, intervalMs: 3600000, buckets: 2 });
        return [{ index: 1, count: 2, codes: ["NBE004", "NBE016"], severity: "high" }];
      }
      if (cmd !== "search") return null;
      const q = (args as { args: { query: string } }).args.query;
      sent.push(q);
      return result(q);
    });
    render(Search);
    const box = screen.getByLabelText("query") as HTMLInputElement;
    await fireEvent.input(box, { target: { value: "download" } });
    await fireEvent.submit(box.form!);
    await new Promise((r) => setTimeout(r, 0));
    await tick();
    const marks = [...document.querySelectorAll(".detection-mark")];
    expect(marks.map((m) => m.getAttribute("data-codes"))).toEqual(["NBE004 NBE016"]);
    expect(marks[0].classList.contains("sev-high")).toBe(true);
    await fireEvent.click(marks[0]);
    await new Promise((r) => setTimeout(r, 0));
    expect(sent.at(-1)).toBe("(rule:NBE004 OR rule:NBE016) time:[2024-05-01T14:00:00 TO 2024-05-01T14:59:59]");
    // Names in a hit are links to their pages.
    const nb = document.querySelector(".hit .entity-link[data-kind='notebook']")!;
    await fireEvent.click(nb);
    expect(app.entityTarget!.kind).toBe("notebook");
  });
});
