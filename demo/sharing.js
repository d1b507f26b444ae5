// The demo's sharing, through the browser client: a file's share panel (grants to other callers,
// share links with their one-time URL) and the "Shared with me" list. A link's URL carries its
// secret: it is shown in the panel that created it and nowhere else, and never logged.
import { button, describeError, formatSize, formatTime, saveFrom } from "./shared.js";

/**
 * "Share…": opens the share panel of `file` in a row under `row`, and closes it again. The panel is
 * made anew on each opening, so a link's URL is gone once it is closed.
 * @param {import("../client/presign-gate.js").PresignGate} gate
 * @param {{ id: string, filename: string }} file
 * @param {HTMLTableRowElement} row
 */
export function shareButton(gate, file, row) {
  let panel = null;
  const toggle = button("Share…", () => {
    if (panel) {
      panel.remove();
      panel = null;
      toggle.removeAttribute("aria-controls");
    } else {
      panel = sharePanel(gate, file);
      row.after(panel);
      toggle.setAttribute("aria-controls", panel.id);
    }
    toggle.setAttribute("aria-expanded", String(Boolean(panel)));
  });
  toggle.setAttribute("aria-expanded", "false");
  toggle.dataset.testid = "share";
  return toggle;
}

/** @param {import("../client/presign-gate.js").PresignGate} gate @param {{ id: string, filename: string }} file */
function sharePanel(gate, file) {
  const template = /** @type {HTMLTemplateElement} */ (document.querySelector("#share-panel"));
  const panel = /** @type {HTMLTableRowElement} */ (template.content.firstElementChild.cloneNode(true));
  panel.id = `share-${file.id}`;
  panel.dataset.fileId = file.id;
  const find = (testid) => /** @type {HTMLElement} */ (panel.querySelector(`[data-testid=${testid}]`));
  panel.querySelector("[role=group]").setAttribute("aria-label", `Sharing “${file.filename}”`);
  const error = find("share-error");
  const grants = find("grants");
  const links = find("links");
  const newLink = find("new-link");
  const linkUrl = /** @type {HTMLInputElement} */ (find("link-url"));
  const copyStatus = find("copy-status");

  /** Runs one API step, showing its refusal in words in the panel. */
  const step = async (action) => {
    error.hidden = true;
    try {
      await action();
    } catch (failure) {
      error.textContent = describeError(failure, { filename: file.filename });
      error.hidden = false;
    }
  };
  const showGrants = () => step(async () => grants.replaceChildren(...(await gate.grants(file.id)).map(grantItem)));
  const showLinks = () => step(async () => links.replaceChildren(...(await gate.links(file.id)).map(linkItem)));

  function grantItem(grant) {
    const item = document.createElement("li");
    item.dataset.testid = "grant";
    item.dataset.grantee = grant.grantee;
    const until = grant.expiresAt ? `until ${formatTime(grant.expiresAt)}${lapsed(grant.expiresAt) ? " (expired)" : ""}` : "until revoked";
    item.append(`${grant.grantee}, ${until} `);
    const revoke = button("Revoke", () => step(async () => {
      await gate.revokeGrant(file.id, grant.grantee);
      item.remove();
    }), "secondary");
    revoke.setAttribute("aria-label", `Revoke ${grant.grantee}'s access`);
    item.append(revoke);
    return item;
  }

  function linkItem(link) {
    const item = document.createElement("li");
    item.dataset.testid = "link";
    item.dataset.linkId = link.id;
    const allowed = link.maxDownloads === null ? "" : ` of ${link.maxDownloads}`;
    const state = lapsed(link.expiresAt) ? " (expired)" : link.downloads >= (link.maxDownloads ?? Infinity) ? " (used up)" : "";
    // The id's first characters tell the links apart; it is no secret (the URL's query is).
    const name = `link ${link.id.slice(0, 8)}`;
    item.append(`Share ${name}, made ${formatTime(link.createdAt)}: ${link.downloads}${allowed} downloads, until ${formatTime(link.expiresAt)}${state} `);
    const revoke = button("Revoke", () => step(async () => {
      await gate.revokeLink(file.id, link.id);
      item.remove();
      // The URL shown is this link's: it leads nowhere now.
      if (newLink.dataset.linkId === link.id) newLink.hidden = true;
    }), "secondary");
    revoke.setAttribute("aria-label", `Revoke ${name}`);
    item.append(revoke);
    return item;
  }

  find("grant-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const field = /** @type {HTMLInputElement} */ (find("grantee"));
    step(async () => {
      await gate.grant(file.id, field.value.trim());
      field.value = "";
      await showGrants();
    });
  });
  find("link-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const maxDownloads = /** @type {HTMLInputElement} */ (find("link-max-downloads"));
    const expiresIn = /** @type {HTMLSelectElement} */ (find("link-expires-in"));
    step(async () => {
      const link = await gate.createLink(file.id, {
        maxDownloads: maxDownloads.value ? Number(maxDownloads.value) : undefined,
        expiresIn: expiresIn.value ? Number(expiresIn.value) : undefined,
      });
      linkUrl.value = link.url;
      newLink.dataset.linkId = link.id;
      newLink.hidden = false;
      copyStatus.textContent = "";
      linkUrl.select();
      await showLinks();
    });
  });
  find("copy-link").addEventListener("click", async () => {
    linkUrl.select();
    try {
      await navigator.clipboard.writeText(linkUrl.value);
      copyStatus.textContent = "Copied.";
    } catch {
      // No clipboard outside a secure context, or without the page's focus: the text is selected.
      copyStatus.textContent = "This page may not write to the clipboard: copy the selected link yourself.";
    }
  });

  showGrants();
  showLinks();
  return panel;
}

/** The one row of an empty "Shared with me". */
function emptyRow() {
  const cell = document.createElement("td");
  cell.colSpan = 5;
  cell.textContent = "Nothing is shared with you yet.";
  const tr = document.createElement("tr");
  tr.className = "empty";
  tr.append(cell);
  return tr;
}

/** Whether an API timestamp has passed. @param {string} iso */
function lapsed(iso) {
  return Date.parse(iso) <= Date.now();
}

/**
 * The "Shared with me" table: the files others shared with the caller, a page at a time, each
 * with its owner and a Download button.
 * @param {{ body: HTMLElement, error: HTMLElement, more: HTMLButtonElement }} elements
 */
export function sharedList({ body, error, more }) {
  let nextToken = null;

  /** @param {import("../client/presign-gate.js").PresignGate} gate @param {any} file */
  function row(gate, file) {
    const tr = document.createElement("tr");
    tr.dataset.testid = "shared-row";
    tr.dataset.owner = file.owner;
    tr.dataset.fileId = file.id;
    const expires = file.expiresAt ? formatTime(file.expiresAt) : "no expiry";
    const cells = [file.filename, file.owner, formatSize(file.size), expires].map((text) => {
      const cell = document.createElement("td");
      cell.textContent = text;
      return cell;
    });
    cells[2].title = `${file.size} bytes`;
    const actions = document.createElement("td");
    actions.append(button("Download", async () => {
      error.hidden = true;
      try {
        saveFrom((await gate.sharedDownloadUrl(file.owner, file.id, { disposition: "attachment" })).url);
      } catch (failure) {
        show(failure.code === "not_found" ? `“${file.filename}” is no longer shared with you.` : describeError(failure, file));
      }
    }));
    tr.append(...cells, actions);
    return tr;
  }

  function show(text) {
    error.textContent = text;
    error.hidden = false;
  }

  return {
    /** @param {import("../client/presign-gate.js").PresignGate} gate @param {{ more?: boolean }} [options] */
    async refresh(gate, { more: next = false } = {}) {
      error.hidden = true;
      try {
        const page = await gate.shared({ limit: 50, nextToken: next ? nextToken ?? undefined : undefined });
        if (!next) body.replaceChildren();
        for (const file of page.files) body.append(row(gate, file));
        if (!body.children.length) body.append(emptyRow());
        nextToken = page.nextToken;
        more.hidden = !nextToken;
      } catch (failure) {
        show(describeError(failure));
      }
    },
  };
}
