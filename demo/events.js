// The demo's Events panel: the file events (README, "Events") published for the signed-in caller,
// as `make local`'s EventBridge stand-in kept them (its sink, `GET /__events?owner=<sub>` on the
// demo's own origin). Local only: a deployed stack has no sink, so where `/__events` is not there
// (a 404, or a static server's page instead of JSON) the panel stays hidden and stops asking.
import { rejectedForText } from "./scans.js";

const SINK_PATH = "/__events";
/** How often the panel asks the sink again while the page is visible. */
export const POLL_MS = 2000;

/**
 * The caller the sink knows the page's user by: locally, the dev name is the `sub`. With a token
 * there is none: the page never reads a token, and only a deployed stack (no sink) takes one.
 * @param {HTMLFormElement} form
 */
export function eventsOwner(form) {
  const { devUser, token } = form.elements;
  return token.value.trim() ? null : devUser.value.trim() || null;
}

/**
 * The panel in `section`, listing into `list`. `follow(owner)` shows that caller's events (`null`:
 * none, the panel hidden) and asks again every `POLL_MS` while the page is visible; `refresh()`
 * asks at once (after an upload or a delete).
 * @param {{ section: HTMLElement, list: HTMLElement }} elements
 */
export function eventsPanel({ section, list }) {
  /** @type {string | null} */
  let owner = null;
  /** The sink answered 404 or no JSON: this page has none, so it is not asked again. */
  let absent = false;
  let timer = 0;
  let asking = false;
  let askAgain = false;
  let shown = "";

  const hide = () => {
    section.hidden = true;
    list.replaceChildren();
    shown = "";
  };

  const schedule = () => {
    clearTimeout(timer);
    if (owner && !absent && document.visibilityState === "visible") timer = setTimeout(refresh, POLL_MS);
  };

  async function refresh() {
    if (!owner || absent) return;
    if (asking) {
      askAgain = true;
      return;
    }
    asking = true;
    const asked = owner;
    try {
      const events = await readSink(asked);
      if (events === null) {
        absent = true;
        hide();
      } else if (asked === owner) {
        show(events);
      }
    } catch {
      // No answer at all (the local stack stopped): nothing to show, asked again at the next turn.
    } finally {
      asking = false;
      if (askAgain) {
        askAgain = false;
        refresh();
      } else {
        schedule();
      }
    }
  }

  /** @param {any[]} events newest first */
  function show(events) {
    const unique = dedupe(events);
    const key = unique.map((event) => event.detail.eventId).join(" ");
    section.hidden = false;
    if (key === shown && list.childElementCount > 0) return;
    shown = key;
    if (unique.length === 0) {
      const empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = "No events yet.";
      list.replaceChildren(empty);
    } else {
      list.replaceChildren(...unique.map(eventItem));
    }
  }

  document.addEventListener("visibilitychange", () => (document.visibilityState === "visible" ? refresh() : clearTimeout(timer)));

  return {
    /** @param {string | null} caller */
    follow(caller) {
      owner = caller;
      clearTimeout(timer);
      hide();
      refresh();
    },
    refresh,
  };
}

/**
 * The sink's events for `owner`, newest first; `null` when this origin has no sink.
 * @param {string} owner
 */
async function readSink(owner) {
  const response = await fetch(`${SINK_PATH}?owner=${encodeURIComponent(owner)}`, {
    headers: { accept: "application/json" },
    cache: "no-store",
  });
  if (!response.ok) return null;
  // A static server may answer its own page instead: not JSON, so no sink either.
  try {
    const { events } = await response.json();
    return Array.isArray(events) ? events.filter((event) => event?.detail?.file) : null;
  } catch {
    return null;
  }
}

/** Delivery is at least once: one change may arrive twice, with the same `detail.eventId`. */
function dedupe(events) {
  const seen = new Set();
  return events.filter(({ detail }) => !seen.has(detail.eventId) && seen.add(detail.eventId));
}

/** What a removal leaves: no status, so the panel names the event's. */
const REMOVED = { "File Deleted": "deleted", "File Expired": "expired" };

function eventItem(event) {
  const { detail } = event;
  const { file } = detail;
  const item = document.createElement("li");
  item.dataset.testid = "event";
  item.dataset.fileId = file.id;
  item.dataset.detailType = event["detail-type"];
  const time = document.createElement("time");
  time.dateTime = detail.occurredAt;
  time.textContent = new Date(detail.occurredAt).toLocaleTimeString();
  const type = document.createElement("strong");
  type.textContent = event["detail-type"];
  const name = document.createElement("span");
  name.textContent = file.filename;
  const status = document.createElement("span");
  status.dataset.testid = "event-status";
  const next = REMOVED[event["detail-type"]] ?? file.status;
  const rejected = file.rejectedFor ? ` (${rejectedForText(file.rejectedFor)})` : "";
  status.textContent = `${detail.previousStatus ? `${detail.previousStatus} → ` : ""}${next}${rejected}`;
  item.append(time, type, name, status);
  return item;
}
