import { afterEach, describe, expect, it } from "vitest";
import { render, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import Replay from "./Replay.svelte";
import { app } from "../lib/store.svelte";
import { visible } from "../lib/text";
import type { HighlightedCell, Replay as ReplayView } from "../lib/ipc";
// Written by the shell itself (src-tauri/tests/api.rs, on the committed sample logs): the planted incident
// session's replay and highlighted cells exactly as the Rust side sends them. scripts/test.sh fails when
// these files are stale, so a change of what the shell sends breaks this test instead of drifting from it.
import replayJson from "../fixtures/incident-replay.json";
import highlightJson from "../fixtures/incident-highlight.json";

const replay = replayJson as unknown as ReplayView;
const highlighted = highlightJson as unknown as HighlightedCell[];

afterEach(() => { cleanup(); clearMocks(); app.replayTarget = null; });
const settle = () => new Promise((r) => setTimeout(r, 80));

describe("Replay view on the shell's own output", () => {
  it("shows the incident's cells as highlighted text and each finding at its sink", async () => {
    const asked: number[] = [];
    mockIPC((cmd, args) => {
      const a = args as Record<string, unknown>;
      if (cmd === "replay") return replay;
      if (cmd === "highlight") {
        const ids = a.eventIds as number[];
        asked.push(...ids);
        return highlighted.filter((h) => ids.includes(h.event_id));
      }
      if (cmd === "context") return [];
      return null;
    });
    app.caseInfo = { triage_states: ["uncategorized"] } as never;
    app.replayTarget = { session: replay.session.id };
    render(Replay);
    await settle(); await settle();
    expect(replay.findings.length).toBeGreaterThan(0);
    const shown = Array.from(document.querySelectorAll<HTMLElement>("article.cell"));
    expect(shown.length).toBeGreaterThan(0);
    for (const el of shown) {
      const id = Number(el.dataset.event);
      expect(asked).toContain(id);
      const cell = replay.cells.find((c) => c.event_id === id)!;
      // Every line of the code is there, as text (hidden characters shown, not obeyed).
      for (const line of (cell.code ?? "").split("\n")) expect(el.textContent).toContain(visible(line).trim());
      // Each finding of this cell: its rule shown and its sink marked with the finding's severity.
      for (const f of replay.findings.filter((f) => f.cell.event_id === id)) {
        expect(el.querySelector(`.finding[data-finding='${f.id}']`)!.textContent).toContain(f.rule);
        expect(el.querySelector(`.mark.sink.sev-${f.severity}`)).not.toBeNull();
      }
    }
    expect(document.querySelector("article script, article img[onerror]")).toBeNull();
  });
});
