// Typed calls to the shell's commands (src-tauri/src/commands.rs). Every value here that came from a log
// (code, outputs, names, paths) is untrusted: components render it as text only.
import { invoke, Channel } from "@tauri-apps/api/core";

export interface ApiError { kind: string; message: string }

// Every type the shell returns is generated from its Rust declaration (ts-rs; `cargo test` writes
// ./bindings, scripts/test.sh fails when the checked-in files are stale): a Rust change breaks the UI's
// build instead of drifting from it.
import type { Snippet } from "./bindings/Snippet";
import type { Hit } from "./bindings/Hit";
import type { FacetCount } from "./bindings/FacetCount";
import type { SearchResult } from "./bindings/SearchResult";
import type { Session } from "./bindings/Session";
import type { CellOutput } from "./bindings/CellOutput";
import type { SessionCell } from "./bindings/SessionCell";
import type { LineageFact } from "./bindings/LineageFact";
import type { Span } from "./bindings/Span";
import type { CellRef } from "./bindings/CellRef";
import type { TraceStep } from "./bindings/TraceStep";
import type { FindingRow } from "./bindings/FindingRow";
import type { Attachment } from "./bindings/Attachment";
import type { Replay } from "./bindings/Replay";
import type { Token } from "./bindings/Token";
import type { TrailGap } from "./bindings/TrailGap";
import type { CaseSummary } from "./bindings/CaseSummary";
import type { CaseInfo } from "./bindings/CaseInfo";
import type { RecentCase } from "./bindings/RecentCase";
import type { IngestProgress } from "./bindings/IngestProgress";
import type { ErrorEntry } from "./bindings/ErrorEntry";
import type { IngestReport } from "./bindings/IngestReport";
import type { IngestResult } from "./bindings/IngestResult";
import type { EventRow } from "./bindings/EventRow";
import type { ExportReport } from "./bindings/ExportReport";
import type { Verdict } from "./bindings/Verdict";
import type { Count } from "./bindings/Count";
import type { FindingFilter } from "./bindings/FindingFilter";
import type { HighlightedCell } from "./bindings/HighlightedCell";
import type { FindingView } from "./bindings/FindingView";
import type { SessionEnd } from "./bindings/SessionEnd";
import type { Trust } from "./bindings/Trust";
import type { EventFields } from "./bindings/EventFields";
import type { EntityPage } from "./bindings/EntityPage";
import type { CaseNotes } from "./bindings/CaseNotes";
import type { NoteRow } from "./bindings/NoteRow";
import type { Counted } from "./bindings/Counted";
import type { SessionWithFindings } from "./bindings/SessionWithFindings";
import type { DetectionMark } from "./bindings/DetectionMark";
export type {
  Snippet, Hit, FacetCount, SearchResult, Session, CellOutput, SessionCell, LineageFact, Span, CellRef, TraceStep, FindingRow, Attachment, Replay, Token, TrailGap, CaseSummary, CaseInfo, RecentCase, IngestProgress, ErrorEntry, IngestReport, IngestResult, EventRow, ExportReport, Verdict, Count, FindingFilter, HighlightedCell, FindingView, SessionEnd, Trust, EventFields, EntityPage, Counted, SessionWithFindings, CaseNotes, NoteRow, DetectionMark,
};
/** What an entity page can be about. */
export type EntityKind = "user" | "notebook" | "table" | "secret_scope";
/** A finding as the replay shows it. */
export type Finding = FindingView;

/** Normalises whatever a rejected invoke carries into `{kind, message}`. */
export function asError(e: unknown): ApiError {
  if (e && typeof e === "object" && "message" in e) {
    const o = e as { kind?: unknown; message?: unknown };
    return { kind: String(o.kind ?? "internal"), message: String(o.message) };
  }
  return { kind: "internal", message: String(e) };
}

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw asError(e);
  }
}

function channel<T>(onMessage: (m: T) => void): Channel<T> {
  const ch = new Channel<T>();
  ch.onmessage = onMessage;
  return ch;
}

export const api = {
  startupCase: () => call<string | null>("startup_case"),
  recentCases: () => call<RecentCase[]>("recent_cases"),
  openCase: (dir: string, create: boolean, onProgress: (c: Count) => void = () => {}) =>
    call<CaseInfo>("open_case", { dir, create, onProgress: channel(onProgress) }),
  caseInfo: () => call<CaseInfo>("case_info"),
  ingest: (paths: string[], onProgress: (p: IngestProgress) => void) =>
    call<IngestResult>("ingest", { paths, onProgress: channel(onProgress) }),
  cancelIngest: () => call<void>("cancel_ingest"),
  analyze: (onProgress: (c: Count) => void) => call<CaseInfo>("analyze", { onProgress: channel(onProgress) }),
  search: (query: string, limit: number, offset: number, sort: string) =>
    call<SearchResult>("search", { args: { query, limit, offset, sort } }),
  /** Sessions with their findings and secret reads; `sort` "findings" puts the most severe first. */
  sessions: (user?: string, notebook?: string, sort?: "start" | "findings") =>
    call<SessionWithFindings[]>("sessions", { user, notebook, sort }),
  replay: (sessionId: string) => call<Replay>("replay", { sessionId }),
  /** The case's notes and the targets starred now. */
  notes: () => call<CaseNotes>("notes"),
  /** A note, question, conclusion, star or unstar on `case`, `event:ID`, `session:ID`, `finding:ID`. */
  addNote: (target: string, kind: "note" | "question" | "conclusion" | "star" | "unstar", text = "") =>
    call<number>("add_note", { target, kind, text }),
  /** Event detections per bucket of the search histogram (its first bucket's start, interval, count). */
  detectionMarks: (firstMs: number, intervalMs: number, buckets: number) =>
    call<DetectionMark[]>("detection_marks", { firstMs, intervalMs, buckets }),
  /** The page of a user, notebook, table or secret scope. */
  entity: (kind: EntityKind, name: string) => call<EntityPage>("entity", { kind, name }),
  /** Highlighted cells of a session by event id, with its findings' marks (code never travels back). */
  highlight: (sessionId: string, eventIds: number[]) => call<HighlightedCell[]>("highlight", { sessionId, eventIds }),
  context: (eventId: number, minutes: number) => call<EventRow[]>("context", { eventId, minutes }),
  event: (id: number) => call<EventRow>("event", { id }),
  findings: (filter: FindingFilter) => call<FindingRow[]>("findings", { filter }),
  setTriage: (findingId: number, status: string, note?: string) =>
    call<void>("set_triage", { findingId, status, note }),
  exportBundle: (
    args: { sessions: string[]; events: number[]; queries: string[]; examiner: string; notes?: string; output: string },
    onProgress: (c: Count) => void,
  ) => call<ExportReport>("export_bundle", { args, onProgress: channel(onProgress) }),
  verifyBundle: (path: string, key?: string) => call<Verdict>("verify_bundle", { path, key }),
};
