// Typed calls to the shell's commands (src-tauri/src/commands.rs). Every value here that came from a log
// (code, outputs, names, paths) is untrusted: components render it as text only.
import { invoke, Channel } from "@tauri-apps/api/core";

export interface ApiError { kind: string; message: string }
export interface Snippet { text: string; ranges: [number, number][] }
export interface Hit {
  event_id: number; session_id: string | null; user: string | null; time: string; time_ms: number;
  action: string; notebook_path: string | null; snippet: Snippet; rules: string[];
}
export interface FacetCount { value: string; count: number }
export interface SearchResult {
  total: number; hits: Hit[]; facets: Record<string, FacetCount[]>;
  histogram: { interval_ms: number; buckets: { start_ms: number; count: number }[] };
  warnings: string[];
}
export interface Session {
  id: string; notebook_id: string; notebook_path: string | null; users: string[]; cluster_id: string | null;
  start: string; end: string; cells: number; attached: boolean; end_reason: string;
}
export interface CellOutput {
  event_id: number; time: string | null; output_type: string; name?: string; text?: string;
  data?: Record<string, unknown>; ename?: string; evalue?: string; truncated?: boolean;
}
export interface SessionCell {
  seq: number; event_id: number; command_id: string | null; time: string; language: string | null;
  status: string | null; duration_s: number | null; code: string | null; user: string | null;
  silent?: boolean; kind?: string; verified?: string; signer?: string; outputs?: CellOutput[];
  lineage?: LineageFact[]; rows_read?: number; rows_produced?: number;
}
/** A Unity Catalog lineage row joined to a cell (a fact from lineage, not from the cell's code). */
export interface LineageFact { event_id: number; access: string; table: string; column?: string; confidence: string }
export interface Span { line: number; col: number; end_line: number; end_col: number }
export interface CellRef { seq: number; command_id: string | null; event_id?: number }
export interface TraceStep { cell: CellRef; span: Span; label: string }
export interface Finding {
  id: number; rule: string; rule_name: string; severity: string; message: string; session_id: string;
  cell: CellRef; span: Span; trace: TraceStep[]; status: string;
}
export interface FindingRow extends Finding { notebook_path: string | null; users: string[]; time: string | null }
export interface Attachment { event_id: number; time: string; user: string | null; source_ip: string | null }
export interface Replay { session: Session; cells: SessionCell[]; attachments?: Attachment[]; findings: Finding[] }
export interface Token { text: string; color: string; marks?: string[] }
export interface TrailGap { workspace_id: string | null; start: string; end: string | null; off_by: string | null; on_by: string | null }
export interface CaseSummary {
  events: number; users: number; notebooks: number; commands: number; sessions: number;
  first: string | null; last: string | null; runs: number; errors: number; duplicates: number; conflicts: number;
  trail_gaps: TrailGap[]; notable: { category: string; actions: string[]; count: number }[]; warnings: string[];
}
export interface CaseInfo {
  dir: string; summary: CaseSummary; gaps: TrailGap[]; findings: { high: number; medium: number; low: number };
  analyzed: boolean; triage_states: string[];
}
export interface RecentCase { dir: string; opened_at: string }
export interface IngestProgress {
  phase: string; files_done: number; files_total: number; bytes_read: number; bytes_total: number;
  events: number; duplicates: number; errors: number; done: number; total: number; elapsed_s: number;
  current_file: string;
}
export interface ErrorEntry { file: string; line: number; byte_offset: number; message: string; location: string }
export interface IngestReport {
  files: number; lines: number; events: number; duplicates: number; conflicts: number; errors: ErrorEntry[];
  error_count: number;
  errors_truncated: boolean; elapsed_ms: number;
}
export interface IngestResult { report: IngestReport; findings: number; case: CaseInfo }
export interface EventRow {
  id: number; time: string; user: string | null; service: string; action: string; notebook_path: string | null;
  notebook_id: string | null; command_text: string | null; status: string | null; source_ip: string | null;
  file: string; line: number; byte_offset: number; location: string; file_sha256: string; raw: string; params: unknown;
  response_status: number | null;
}
export interface ExportReport {
  path: string; events: number; sessions: number; findings: number; files: number; signer: string; bundle_sha256: string;
}
export interface Verdict {
  ok: boolean; intact: boolean; trust: "expected" | "pinned" | "unknown"; pinned_as: string | null;
  problem: string | null; files_checked: number; signer: string | null; info: Record<string, string>;
}
export interface Count { done: number; total: number }
export interface FindingFilter { rule?: string; severity?: string; user?: string; notebook?: string; status?: string }
export interface HighlightItem {
  code: string; language: string | null;
  marks: { key: string; line: number; col: number; end_line: number; end_col: number }[];
}

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
  sessions: (user?: string, notebook?: string) => call<Session[]>("sessions", { user, notebook }),
  replay: (sessionId: string) => call<Replay>("replay", { sessionId }),
  highlight: (items: HighlightItem[]) => call<Token[][][]>("highlight", { items }),
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
