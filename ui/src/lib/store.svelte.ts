// App-wide state (Svelte 5 runes): the open case, the current view, the evidence basket, the display zone,
// search history and saved searches (kept in localStorage: they belong to the examiner, not the case).
import { api, type CaseInfo, type ApiError, type EntityKind } from "./ipc";
import type { Zone } from "./text";

export type View = "home" | "search" | "replay" | "findings" | "basket" | "entity";

export interface BasketItem { kind: "session" | "event" | "query"; id: string; label: string }

function load<T>(key: string, fallback: T): T {
  try {
    const v = localStorage.getItem(key);
    return v ? (JSON.parse(v) as T) : fallback;
  } catch {
    return fallback;
  }
}
function save(key: string, v: unknown) {
  try { localStorage.setItem(key, JSON.stringify(v)); } catch { /* storage full or disabled */ }
}

class AppStore {
  view = $state<View>("home");
  caseInfo = $state<CaseInfo | null>(null);
  zone = $state<Zone>(load("nbtrail.zone", "UTC"));
  /** The basket belongs to the open case (event ids mean nothing in another case). */
  basket = $state<BasketItem[]>([]);
  history = $state<string[]>(load("nbtrail.history", []));
  saved = $state<string[]>(load("nbtrail.saved", []));
  error = $state<ApiError | null>(null);
  /** What the replay view shows: a session and optionally the cell (event id) to select. */
  replayTarget = $state<{ session: string; event?: number; finding?: number } | null>(null);
  /** What the entity view shows. */
  entityTarget = $state<{ kind: EntityKind; name: string } | null>(null);
  /** A query for the search view to run when it opens. */
  pendingQuery = $state<string | null>(null);
  /** Targets starred now (`session:ID`, `event:ID`, `finding:ID`): case notes, shared by every view. */
  starred = $state<Set<string>>(new Set());

  private basketKey() { return `nbtrail.basket:${this.caseInfo?.dir ?? ""}`; }
  /** Switches to a case (or none): its basket comes with it. */
  setCase(info: CaseInfo | null) {
    const same = info && this.caseInfo && info.dir === this.caseInfo.dir;
    this.caseInfo = info;
    if (!same) {
      this.basket = info ? load(this.basketKey(), []) : [];
      this.replayTarget = null;
    }
  }
  setZone(z: Zone) { this.zone = z; save("nbtrail.zone", z); }
  addToBasket(item: BasketItem) {
    if (!this.basket.some((b) => b.kind === item.kind && b.id === item.id)) {
      this.basket = [...this.basket, item];
      save(this.basketKey(), this.basket);
    }
  }
  removeFromBasket(i: number) { this.basket = this.basket.filter((_, k) => k !== i); save(this.basketKey(), this.basket); }
  clearBasket() { this.basket = []; save(this.basketKey(), []); }
  remember(q: string) {
    if (!q.trim()) return;
    this.history = [q, ...this.history.filter((h) => h !== q)].slice(0, 50);
    save("nbtrail.history", this.history);
  }
  saveSearch(q: string) {
    if (q.trim() && !this.saved.includes(q)) { this.saved = [...this.saved, q]; save("nbtrail.saved", this.saved); }
  }
  unsaveSearch(q: string) { this.saved = this.saved.filter((s) => s !== q); save("nbtrail.saved", this.saved); }
  openReplay(session: string, event?: number, finding?: number) {
    this.replayTarget = { session, event, finding };
    this.view = "replay";
  }
  openEntity(kind: EntityKind, name: string) {
    this.entityTarget = { kind, name };
    this.view = "entity";
  }
  searchFor(q: string) { this.pendingQuery = q; this.view = "search"; }
  /** Reloads the stars from the case's notes (a view showing star buttons calls it when it loads). */
  async loadStars() {
    try { this.starred = new Set((await api.notes())?.starred ?? []); } catch { /* no stars shown */ }
  }
  setStar(target: string, on: boolean) {
    const next = new Set(this.starred);
    if (on) next.add(target); else next.delete(target);
    this.starred = next;
  }
  fail(e: unknown) {
    const o = e as ApiError;
    this.error = o && typeof o === "object" && "message" in o ? o : { kind: "internal", message: String(e) };
  }
}

export const app = new AppStore();
