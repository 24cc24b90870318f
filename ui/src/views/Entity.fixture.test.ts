import { afterEach, describe, expect, it } from "vitest";
import { render, cleanup, fireEvent } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import Entity from "./Entity.svelte";
import { app } from "../lib/store.svelte";
import type { EntityPage } from "../lib/ipc";
// Written by the shell on the sample logs (src-tauri/tests/api.rs): the incident user's page as the Rust
// side sends it; scripts/test.sh fails when it is stale.
import pageJson from "../fixtures/incident-user-page.json";

const page = pageJson as unknown as EntityPage;

afterEach(() => { cleanup(); clearMocks(); app.entityTarget = null; app.replayTarget = null; });
const settle = () => new Promise((r) => setTimeout(r, 50));

describe("Entity view on the shell's own output", () => {
  it("shows the user's activity, detections and sessions, and opens a session's replay", async () => {
    const asked: unknown[] = [];
    mockIPC((cmd, args) => {
      if (cmd === "entity") { asked.push(args); return page; }
      return null;
    });
    app.openEntity("user", page.name);
    render(Entity);
    await settle();
    expect(asked).toEqual([{ kind: "user", name: page.name }]);
    expect(document.querySelectorAll(".histogram .day").length).toBe(page.facts.per_day.length);
    const rules = Array.from(document.querySelectorAll(".entity-findings .finding-row b")).map((b) => b.textContent);
    expect(rules).toContain("NBE018");
    expect(rules).toContain("NBT001");
    const sessions = document.querySelectorAll(".entity-sessions li");
    expect(sessions.length).toBe(page.sessions.length);
    // Tables are links to their own pages; a session opens its replay.
    expect(document.querySelector(".entity-link[data-kind='table']")).not.toBeNull();
    const withFindings = page.sessions.find((s) => s.findings > 0)!;
    await fireEvent.click(document.querySelector(`li[data-session='${withFindings.session.id}'] .open-session`)!);
    expect(app.view).toBe("replay");
    expect(app.replayTarget?.session).toBe(withFindings.session.id);
    expect(document.querySelector(".entity script")).toBeNull();
  });
});
