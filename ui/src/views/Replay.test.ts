import { afterEach, describe, expect, it } from "vitest";
import { render, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import Replay from "./Replay.svelte";
import { app } from "../lib/store.svelte";
import type { FindingView, Session, SessionCell } from "../lib/ipc";

// Typed with the generated bindings: a change to the Rust view types breaks these fixtures' type check.
const session: Session = { id: "s1", notebook_id: "n1", notebook_path: "/Users/alice/nb", users: ["alice@example.com"], cluster_id: "c1",
  start: "2024-05-01T14:00:00Z", end: "2024-05-01T15:00:00Z", cells: 2, attached: true, end_reason: "detach" };
const cells: SessionCell[] = [
  { seq: 1, event_id: 10, command_id: "1", time: "2024-05-01T14:00:00Z", language: "python", status: "finished", duration_s: 0.1,
    code: "key = dbutils.secrets.get('s', 'k')", user: "alice@example.com",
    lineage: [{ event_id: 30, access: "read", table: "prod.crm.<b>customers</b>", confidence: "during" }], rows_read: 5 },
  { seq: 2, event_id: 11, command_id: "2", time: "2024-05-01T14:01:00Z", language: "python", status: "finished", duration_s: 0.1,
    code: "print(key)  # <script>alert(1)</script>", user: "alice@example.com",
    outputs: [{ event_id: 12, time: null, output_type: "stream", name: "stdout", text: "\u001b[31mhunter2</b>" }] },
];
const finding: FindingView = { id: 5, rule: "NBT001", rule_name: "secret-leak", severity: "high", message: "secret printed", session_id: "s1",
  cell: { seq: 2, command_id: "2", event_id: 11 }, span: { line: 1, col: 7, end_line: 1, end_col: 10 }, status: "uncategorized",
  trace: [
    { cell: { seq: 1, command_id: "1", event_id: 10 }, span: { line: 1, col: 7, end_line: 1, end_col: 26 }, label: "secret read" },
    { cell: { seq: 2, command_id: "2", event_id: 11 }, span: { line: 1, col: 7, end_line: 1, end_col: 10 }, label: "printed" },
  ] };

afterEach(() => { cleanup(); clearMocks(); app.replayTarget = null; });

const settle = () => new Promise((r) => setTimeout(r, 80));

describe("Replay view", () => {
  it("asks for highlighting with the finding's marks, marks the sink, jumps along the trace, triages", async () => {
    const highlightCalls: unknown[] = [];
    const triage: unknown[] = [];
    const stars: unknown[] = [];
    mockIPC((cmd, args) => {
      const a = args as Record<string, unknown>;
      if (cmd === "replay") return { session, cells, findings: [finding] };
      if (cmd === "context") return [{ id: 99, time: "2024-05-01T14:00:30Z", user: "alice@example.com", service: "secrets", action: "getSecret",
        notebook_path: null, response_status: 200 }];
      if (cmd === "highlight") {
        highlightCalls.push(a);
        // The shell marks what the session's findings locate in each cell (nbtrail_ops::highlight::marks_in_cell):
        // trace step 0 in cell 10, the sink and step 1 in cell 11.
        const marks: Record<number, [number, number, string[]]> = { 10: [6, 25, ["t5.0"]], 11: [6, 9, ["f5", "t5.1"]] };
        return (a.eventIds as number[]).map((id) => {
          const code = cells.find((c) => c.event_id === id)!.code!;
          const [from, to, keys] = marks[id];
          return { event_id: id, lines: [[
            { text: code.slice(0, from), color: "#000000" },
            { text: code.slice(from, to), color: "#000000", marks: keys },
            { text: code.slice(to), color: "#000000" }]] };
        });
      }
      if (cmd === "set_triage") { triage.push(a); return null; }
      if (cmd === "notes") return { notes: [], starred: [] };
      if (cmd === "add_note") { stars.push(a); return 1; }
      return null;
    });
    app.caseInfo = { triage_states: ["uncategorized", "valid"] } as never;
    app.replayTarget = { session: "s1", event: 11, finding: 5 };
    render(Replay);
    await settle(); await settle();
    // Both cells asked for by session and event id: the code never travels back to the shell.
    expect(highlightCalls).toEqual([{ sessionId: "s1", eventIds: [10, 11] }]);
    const sink = document.querySelector("article[data-event='11'] .mark.sink")!;
    expect(sink.textContent).toBe("key");
    expect(sink.classList.contains("sev-high")).toBe(true);
    // Hostile text and output are text nodes.
    expect(document.querySelector("article script")).toBeNull();
    // Lineage joined to a cell is shown with how it was joined, its table name as text.
    const lineage = document.querySelector("article[data-event='10'] .lineage")!;
    expect(lineage.textContent).toContain("lineage: read prod.crm.<b>customers</b>");
    expect(lineage.textContent).toContain("(during the run)");
    expect(lineage.querySelector("b")).toBeNull();
    expect(document.querySelector("article[data-event='10']")!.textContent).toContain("5 rows read");
    expect(document.body.textContent).toContain("<script>alert(1)</script>");
    expect(document.body.textContent).toContain("\u241b[31mhunter2</b>");
    // The context strip shows the user's secret read.
    expect(document.querySelector(".ctx.notable")!.textContent).toContain("secrets.getSecret");
    // Trace step 0 selects cell 1 and activates its mark.
    await fireEvent.click(document.querySelector(".finding[data-finding='5'] .trace-step[data-step='0']")!);
    await settle();
    expect(document.querySelector("article.cell.selected")!.getAttribute("data-event")).toBe("10");
    expect(document.querySelector(".mark.active")!.closest("article")!.getAttribute("data-event")).toBe("10");
    // A star on the finding is a case note (custody-logged by the shell); the button shows it.
    const star = document.querySelector(".finding[data-finding='5'] .star")!;
    expect(star.textContent).toBe("☆");
    await fireEvent.click(star);
    await settle();
    expect(stars).toEqual([{ target: "finding:5", kind: "star", text: "" }]);
    expect(document.querySelector(".finding[data-finding='5'] .star")!.textContent).toBe("★");
    // Triage goes to the shell.
    const sel = document.querySelector(".finding[data-finding='5'] select") as HTMLSelectElement;
    sel.value = "valid";
    await fireEvent.change(sel);
    await settle();
    expect(triage).toEqual([{ findingId: 5, status: "valid" }]);
  });
  it("stars and annotates the session and single cells, and links the notebook, users and tables to their pages", async () => {
    const notes: unknown[] = [];
    mockIPC((cmd, args) => {
      if (cmd === "replay") return { session, cells, findings: [] };
      if (cmd === "notes") return { notes: [], starred: ["event:10"] };
      if (cmd === "add_note") { notes.push(args); return notes.length; }
      if (cmd === "highlight" || cmd === "context") return [];
      return null;
    });
    app.replayTarget = { session: "s1" };
    render(Replay);
    await settle(); await settle();
    // Stars already in the case are shown.
    expect(document.querySelector("article[data-event='10'] .star")!.textContent).toBe("★");
    expect(document.querySelector("article[data-event='11'] .star")!.textContent).toBe("☆");
    // Unstar a cell, star the session.
    await fireEvent.click(document.querySelector("article[data-event='10'] .star")!);
    await fireEvent.click(document.querySelector(".replay-head .star[data-target='session:s1']")!);
    await settle();
    expect(document.querySelector("article[data-event='10'] .star")!.textContent).toBe("☆");
    expect(document.querySelector(".replay-head .star")!.textContent).toBe("★");
    // A question on one cell.
    await fireEvent.click(document.querySelector("article[data-event='11'] .add-note")!);
    const input = document.querySelector("article[data-event='11'] .note-form input") as HTMLInputElement;
    const kind = document.querySelector("article[data-event='11'] .note-form select") as HTMLSelectElement;
    kind.value = "question";
    await fireEvent.change(kind);
    await fireEvent.input(input, { target: { value: "why <b>this</b> key?" } });
    await fireEvent.submit(input.form!);
    await settle();
    expect(notes).toEqual([
      { target: "event:10", kind: "unstar", text: "" },
      { target: "session:s1", kind: "star", text: "" },
      { target: "event:11", kind: "question", text: "why <b>this</b> key?" },
    ]);
    expect(document.querySelector("article[data-event='11'] .note-form")).toBeNull();
    // Names from the log are links to their pages.
    const table = document.querySelector("article[data-event='10'] .lineage .entity-link[data-kind='table']")!;
    await fireEvent.click(table);
    expect(app.view).toBe("entity");
    expect(app.entityTarget).toEqual({ kind: "table", name: "prod.crm.<b>customers</b>" });
    await fireEvent.click(document.querySelector(".replay-head h1 .entity-link[data-kind='notebook']")!);
    expect(app.entityTarget!.kind).toBe("notebook");
    expect(app.entityTarget!.name).toBe(session.notebook_path);
  });
});
