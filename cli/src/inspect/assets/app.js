// The hookfwd inspector page: a live list over SSE, filters, a detail view and its buttons, an editor for
// edited replays, and a comparison of two deliveries. No framework.
"use strict";

const token = document.querySelector('meta[name="hookfwd-token"]').content;
const $ = (id) => document.getElementById(id);
const rows = new Map(); // seq -> summary
let selected = null; // the seq shown in the detail
let opening = 0; // calls of open() so far
let detail = null; // its detail
let raw = false;
let picked = []; // seqs picked for comparison, at most two
let hits = null; // seqs whose request holds the text filter (searched by hookfwd), or null
let searching = null; // the pending search's timer
let stopped = false; // the live stream broke: hookfwd stopped

// Characters that show nothing or reorder what follows (bidi controls, zero-width and other format characters,
// controls other than tab and line breaks, tag characters): shown as escapes, so `evil` cannot pass for `live`.
const INVISIBLE =
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u00AD\u061C\u115F\u1160\u17B4\u17B5\u180E\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFEFF\uFFA0\uFFF9-\uFFFB\u{E0000}-\u{E007F}]/gu;
// Headers hookfwd sets on a replay itself.
const SET_BY_HOOKFWD = ["x-hub-signature", "x-hub-signature-256", "x-hookfwd-replay"];
const ABSENT = Symbol("absent");

function codeOf(char) {
  return char.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
}

// `text` as DOM nodes, each invisible character an escape in a span of its own.
function visible(text) {
  text = String(text ?? "");
  const out = document.createDocumentFragment();
  let at = 0;
  for (const found of text.matchAll(INVISIBLE)) {
    if (found.index > at) out.append(text.slice(at, found.index));
    const code = codeOf(found[0]);
    const escape = document.createElement("span");
    escape.className = "esc";
    escape.textContent = code.length > 4 ? `\\u{${code}}` : `\\u${code}`;
    escape.title = `U+${code}: an invisible character, shown escaped`;
    out.append(escape);
    at = found.index + found[0].length;
  }
  out.append(text.slice(at));
  return out;
}

function show(element, text) {
  element.replaceChildren(visible(text));
}

function kindClass(row) {
  if (row.status == null) return row.error ? "serr" : "";
  return "s" + String(row.status)[0];
}

function statusText(row) {
  if (row.status != null) return String(row.status);
  return row.error ? "unreachable" : "pending";
}

function matches(row) {
  const event = $("filter-event").value;
  const status = $("filter-status").value;
  const text = $("filter-text").value.trim().toLowerCase();
  if (event && row.event !== event) return false;
  if (status === "error" && !(row.status == null && row.error)) return false;
  if (status === "parked" && !row.parked) return false;
  if (/^\dxx$/.test(status) && (row.status == null || String(row.status)[0] !== status[0])) return false;
  if (text) {
    const hay = [`#${row.seq}`, row.guid, row.kind, row.source, row.via, statusText(row)].join(" ").toLowerCase();
    if (!hay.includes(text) && !(hits && hits.has(row.seq))) return false;
  }
  return true;
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.append(visible(text));
  if (cls) td.className = cls;
  return td;
}

function link(seq) {
  const a = document.createElement("a");
  a.href = `#/deliveries/${seq}`;
  a.textContent = `#${seq}`;
  return a;
}

function button(label, title, action) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.title = title;
  b.addEventListener("click", action);
  return b;
}

function render(row) {
  let tr = document.querySelector(`#rows tr[data-seq="${row.seq}"]`);
  const fresh = !tr;
  if (fresh) {
    tr = document.createElement("tr");
    tr.dataset.seq = row.seq;
    tr.tabIndex = 0;
    tr.addEventListener("click", () => open(row.seq));
    tr.addEventListener("keydown", (e) => {
      if (e.target === tr && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); open(row.seq); }
    });
  }
  const pick = document.createElement("input");
  pick.type = "checkbox";
  pick.checked = picked.includes(row.seq);
  pick.title = "Pick two rows to compare them";
  pick.setAttribute("aria-label", `compare #${row.seq}`);
  pick.addEventListener("click", (e) => e.stopPropagation());
  pick.addEventListener("change", () => choose(row.seq, pick.checked));
  const picker = document.createElement("td");
  picker.className = "pick";
  picker.append(pick);
  const source = cell(row.source);
  source.title = row.hook_id == null ? row.source : `${row.source} hook ${row.hook_id}`;
  const guid = cell(row.guid.slice(0, 8) + "…", "guid");
  guid.title = row.guid;
  tr.replaceChildren(
    picker,
    cell(row.seq, "seq"),
    cell(new Date(row.seen).toLocaleTimeString()),
    source,
    cell(row.kind),
    guid,
    cell(row.via),
    cell(statusText(row), kindClass(row)),
    cell(row.latency_ms != null ? row.latency_ms + " ms" : ""),
    cell(""),
  );
  const marks = tr.lastChild;
  const replayOf = `${row.edited ? "edited replay" : "replay"} of #${row.original}`;
  const resentAs = row.parked && [...rows.values()].find((later) => later.resent && later.original === row.seq);
  for (const [on, label, title, cls] of [
    [row.parked && !resentAs, "parked", "the handler kept rejecting it; open it to send it again", "bad"],
    [resentAs, `was parked, sent again as #${resentAs && resentAs.seq}`, "parked, then sent again"],
    [row.redelivery, "redelivery", "GitHub redelivered it"],
    [row.replay, replayOf, "replayed from here"],
    [row.resent, "sent again", "it was parked, and sent again"],
    [row.attempts > 1, row.attempts + " attempts", "retried"],
  ]) {
    if (!on) continue;
    const span = document.createElement("span");
    span.className = cls ? `mark ${cls}` : "mark";
    span.textContent = label;
    span.title = title;
    marks.append(span, " ");
  }
  tr.hidden = !matches(row);
  tr.setAttribute("aria-selected", String(selected === row.seq));
  if (fresh) $("rows").prepend(tr);
  $("empty").hidden = rows.size > 0;
  const events = $("filter-event");
  if (![...events.options].some((o) => o.value === row.event)) events.add(new Option(row.event, row.event));
}

function upsert(row) {
  const fresh = !rows.has(row.seq);
  rows.set(row.seq, row);
  render(row);
  if (fresh && row.resent && rows.has(row.original)) render(rows.get(row.original));
  if (fresh && $("filter-text").value.trim()) search();
  // The open delivery changed, or a row that follows it (a replay, the row that sent it again) did.
  if (selected != null && !$("detail").hidden && (selected === row.seq || row.original === selected)) open(selected, true);
}

function refilter() {
  for (const row of rows.values()) render(row);
}

// Asks hookfwd which requests (headers, payload) hold the text filter, a moment after the typing stops.
function search() {
  clearTimeout(searching);
  const text = $("filter-text").value.trim();
  hits = null;
  refilter();
  if (!text) return;
  searching = setTimeout(async () => {
    const answer = await fetch(`/api/search?q=${encodeURIComponent(text)}`).catch(() => null);
    if (!answer || !answer.ok || $("filter-text").value.trim() !== text) return;
    hits = new Set((await answer.json()).seqs);
    refilter();
  }, 150);
}

function served(list) {
  const box = $("served");
  if (!list.length) return;
  const parts = [];
  for (const s of list) {
    if (parts.length) parts.push("; ");
    const name = document.createElement("b");
    name.append(visible(s.source));
    const target = document.createElement("span");
    target.append(visible(s.target));
    parts.push(name, " → ", target, s.streaming ? " · stream" : " · polling");
  }
  box.replaceChildren(...parts);
  // One source: the header names it, and the list needs no column for it.
  $("deliveries").classList.toggle("one-source", list.length === 1);
  box.title = list.map((s) => `${s.hook}${s.hook_url ? ` via ${s.hook_url}` : ""} → ${s.target}`).join("\n");
  document.title = `hookfwd · ${list.map((s) => s.source).join(", ")}`;
}

async function load() {
  const [list, sources] = await Promise.all(["/api/deliveries", "/api/served"].map(async (path) => (await fetch(path)).json()));
  for (const row of list) upsert(row);
  served(sources);
  $("empty").hidden = rows.size > 0;
}

function live() {
  const source = new EventSource("/api/events");
  source.onopen = () => {
    // A new run answers on the same address: its rows, token and numbers are new.
    if (stopped) location.reload();
    $("live").classList.add("on");
  };
  source.onerror = () => {
    $("live").classList.remove("on");
    if (stopped || source.readyState === EventSource.OPEN) return;
    stopped = true;
    $("live").title = "hookfwd has stopped";
    $("stopped").textContent = `hookfwd stopped at ${new Date().toLocaleTimeString()} (or cannot be reached): ` +
      "the deliveries listed stay readable, but nothing new arrives and the buttons cannot act. " +
      "This page reloads when hookfwd runs here again.";
    $("stopped").hidden = false;
  };
  source.onmessage = (e) => upsert(JSON.parse(e.data));
  source.addEventListener("served", (e) => served(JSON.parse(e.data)));
  source.addEventListener("reload", () => load());
}

function kv(table, headers) {
  table.replaceChildren(...Object.entries(headers).map(([k, v]) => {
    const tr = document.createElement("tr");
    tr.append(cell(k), cell(v));
    return tr;
  }));
}

function pretty(text) {
  if (raw || text == null) return text ?? "(not sent yet)";
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
}

// What became of the delivery, and the rows it is linked to.
function state(d) {
  const lines = [];
  const line = (cls, ...parts) => {
    const p = document.createElement("p");
    p.className = `state ${cls}`;
    p.append(...parts);
    lines.push(p);
  };
  const sentAgain = d.later.find((later) => !later.replay);
  const last = d.attempts_detail[d.attempts_detail.length - 1];
  if (d.parked && sentAgain) {
    line("bad", `Parked after ${d.attempts} rejections; sent again as `, link(sentAgain.seq), ".");
  } else if (d.parked) {
    const title = "Send this run's parked deliveries again, as the r key does; each one the handler takes is un-parked";
    line("bad", `Parked: the handler rejected it ${d.attempts} times, so the queue moved on without it. `,
      button("Send again", title, again));
  } else if (!d.replay && !sentAgain && last && (last.status == null || last.status >= 500)) {
    const why = last.status != null ? `answered ${last.status}` : `could not be reached (${last.error})`;
    line("warn", `The handler has not taken it yet: it ${why}. hookfwd keeps trying, waiting longer each time. `,
      button("Retry now", "Try again now, as the r key does", again));
  } else if (!last) {
    line("", "Being sent to the handler…");
  }
  if (d.original != null) {
    const what = d.replay ? (d.edited ? "An edited replay of " : "A replay of ")
      : d.resent ? "Sent again; it was parked as "
        : d.redelivery ? "A redelivery of " : "Sent again after ";
    line("", what, link(d.original), ". ",
      button("Compare", `Compare #${d.original} with #${d.seq}`, () => compare(d.original, d.seq)));
  }
  const replays = d.later.filter((later) => later.replay);
  if (replays.length) {
    const links = replays.flatMap((later, i) => (i ? [", ", link(later.seq)] : [link(later.seq)]));
    line("", "Replayed as ", ...links, ".");
  }
  $("state").replaceChildren(...lines);
}

async function open(seq, quiet) {
  // The latest call wins: a live refresh of the row shown before must not answer after a newer one opened.
  const ticket = ++opening;
  if (selected !== seq) $("editor").hidden = true;
  selected = seq;
  const answer = await fetch(`/api/deliveries/${seq}`).catch(() => null);
  if (ticket !== opening) return;
  if (!answer || !answer.ok) { if (!quiet) notice("This delivery is no longer held."); return; }
  const d = await answer.json();
  if (ticket !== opening) return;
  detail = d;
  const hash = `#/deliveries/${seq}`;
  if (location.hash !== hash) history.pushState(null, "", hash);
  for (const tr of document.querySelectorAll("#rows tr")) tr.setAttribute("aria-selected", String(tr.dataset.seq == seq));
  $("compare").hidden = true;
  $("detail").hidden = false;
  show($("detail-title"), `#${d.seq} · ${d.kind} · ${d.guid}`);
  state(d);
  kv($("req-headers"), d.headers);
  show($("payload"), d.trimmed
    ? "(dropped to keep the inspector's memory bounded; Redeliver on GitHub still works)"
    : pretty(d.payload));
  const box = $("attempts");
  box.replaceChildren(...d.attempts_detail.map((a, i) => {
    const div = document.createElement("div");
    div.className = "attempt";
    const h = document.createElement("div");
    const what = a.status != null ? `answered ${a.status} in ${a.latency_ms} ms` : `unreachable: ${a.error}`;
    show(h, `#${i + 1} · ${new Date(a.at).toLocaleTimeString()} · ${what}`);
    h.className = a.status != null ? "s" + String(a.status)[0] : "serr";
    div.append(h);
    if (a.answer) {
      const t = document.createElement("table");
      t.className = "kv";
      kv(t, a.answer.headers);
      const body = document.createElement("pre");
      show(body, a.answer.body + (a.answer.body_truncated ? `\n… ${a.answer.body_length} bytes in all` : ""));
      div.append(t, body);
    }
    return div;
  }));
  if (!d.attempts_detail.length) box.replaceChildren(visible("None yet."));
  if (!quiet) { notice(""); $("btn-replay").focus(); }
}

function close() {
  opening++;
  $("detail").hidden = true;
  $("compare").hidden = true;
  const tr = document.querySelector(`#rows tr[data-seq="${selected}"]`);
  selected = null;
  detail = null;
  if (location.hash) history.pushState(null, "", location.pathname);
  if (tr) { tr.setAttribute("aria-selected", "false"); tr.focus(); }
}

// Opens the delivery the address names (`#/deliveries/SEQ`).
function route() {
  const named = location.hash.match(/^#\/deliveries\/(\d+)$/);
  if (named) {
    if (Number(named[1]) !== selected || $("detail").hidden) open(Number(named[1]));
  } else if (selected != null) {
    close();
  }
}

function notice(text) { show($("notice"), text); }

async function post(path, json) {
  const init = { method: "POST", headers: { "X-Hookfwd-Token": token } };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  try {
    const answer = await fetch(path, init);
    return [answer.ok, await answer.json()];
  } catch {
    return [false, { error: "hookfwd cannot be reached; is it still running?" }];
  }
}

async function replay() {
  if (selected == null) return;
  notice("Replaying…");
  const [ok, body] = await post(`/api/deliveries/${selected}/replay`);
  if (!ok) return notice(body.error);
  notice(body.status != null ? `Replayed as #${body.seq}: the handler answered ${body.status}.` : `Replay failed: ${body.error}.`);
}

async function again() {
  if (selected == null) return;
  const [ok, body] = await post(`/api/deliveries/${selected}/again`);
  if (!ok) return notice(body.error);
  notice(body.parked
    ? "Sending this run's parked deliveries again: each one the handler takes is un-parked, and shows as a new row."
    : "Trying again now.");
}

function edit() {
  if (!detail) return;
  if (detail.payload == null) return notice("Its request is no longer held; Redeliver on GitHub still works.");
  const headers = Object.entries(detail.headers).filter(([name]) => !SET_BY_HOOKFWD.includes(name.toLowerCase()));
  $("edit-headers").value = headers.map(([name, value]) => `${name}: ${value}`).join("\n");
  $("edit-payload").value = detail.payload;
  invisibleInEditor();
  $("editor").hidden = false;
  $("edit-payload").focus();
}

// A textarea cannot show escapes, so the editor says which invisible characters its payload holds, and offers
// to write them as JSON escapes (the same JSON, other bytes).
function invisibleInEditor() {
  const found = [...$("edit-payload").value.matchAll(INVISIBLE)];
  const codes = [...new Set(found.map((f) => "U+" + codeOf(f[0])))];
  $("edit-invisible").hidden = !found.length;
  const escape = button("Escape them", "Write each as \\uXXXX: the same JSON string, in other bytes", () => {
    const payload = $("edit-payload");
    payload.value = payload.value.replace(INVISIBLE, (char) =>
      Array.from({ length: char.length }, (_, i) => "\\u" + char.charCodeAt(i).toString(16).padStart(4, "0")).join(""));
    invisibleInEditor();
  });
  $("edit-invisible").replaceChildren(`The payload holds ${found.length} invisible character${found.length > 1 ? "s" : ""} ` +
    `(${codes.join(", ")}), sent as they are (here they may reorder the text around them). `, escape);
}

async function sendEdited(e) {
  e.preventDefault();
  if (selected == null) return;
  const headers = {};
  const lines = $("edit-headers").value.split("\n");
  for (const [i, line] of lines.entries()) {
    if (!line.trim()) continue;
    const colon = line.indexOf(":");
    if (colon <= 0) return notice(`Header line ${i + 1} is not "Name: value".`);
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  notice("Sending the edited request…");
  const [ok, body] = await post(`/api/deliveries/${selected}/replay`, { payload: $("edit-payload").value, headers });
  if (!ok) return notice(body.error);
  $("editor").hidden = true;
  await open(body.seq);
  notice(body.status != null ? `Edited and replayed as #${body.seq}: the handler answered ${body.status}.`
    : `The edited replay failed: ${body.error}.`);
}

async function redeliver() {
  if (selected == null) return;
  notice("Asking GitHub…");
  const [ok, body] = await post(`/api/deliveries/${selected}/redeliver`);
  notice(ok ? "GitHub is redelivering it; it appears here as a redelivery." : body.error);
}

async function curl() {
  if (selected == null) return;
  const text = await (await fetch(`/api/deliveries/${selected}/curl`)).text();
  try { await navigator.clipboard.writeText(text); notice("Copied a curl command (signed for the local secret)."); }
  catch { show($("payload"), text); notice("The clipboard is not available here; the command is shown as the payload."); }
}

function save() {
  if (selected == null) return;
  const a = document.createElement("a");
  a.href = `/api/deliveries/${selected}/fixture`;
  a.download = "";
  document.body.append(a);
  a.click();
  a.remove();
  notice("Saved as a fixture (see docs/fixtures.md).");
}

// Picks or unpicks a row for comparison; the second pick compares the two.
function choose(seq, on) {
  picked = picked.filter((p) => p !== seq);
  if (on) picked.push(seq);
  while (picked.length > 2) {
    const dropped = rows.get(picked.shift());
    if (dropped) render(dropped);
  }
  if (picked.length === 2) compare(...[...picked].sort((a, b) => a - b));
}

async function compare(a, b) {
  const [da, db] = await Promise.all([a, b].map(async (seq) => {
    const answer = await fetch(`/api/deliveries/${seq}`).catch(() => null);
    return answer && answer.ok ? answer.json() : null;
  }));
  if (!da || !db) return notice("One of them is no longer held.");
  opening++;
  $("detail").hidden = true;
  $("compare").hidden = false;
  show($("compare-title"), `#${da.seq} ${da.kind} ⟷ #${db.seq} ${db.kind}`);
  $("diff-payload").replaceChildren(payloadDiff(da, db));
  $("diff-headers").replaceChildren(headerDiff(da, db));
}

function paragraph(text) {
  const p = document.createElement("p");
  p.className = "hint";
  p.textContent = text;
  return p;
}

function parsed(text) {
  try { return [true, JSON.parse(text)]; } catch { return [false, text]; }
}

// The leaves that differ between two JSON values: [JSON pointer, a, b], ABSENT where one has none.
function jsonDiff(a, b, path, out) {
  const object = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  if (object(a) && object(b)) {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const at = `${path}/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`;
      jsonDiff(Object.hasOwn(a, key) ? a[key] : ABSENT, Object.hasOwn(b, key) ? b[key] : ABSENT, at, out);
    }
  } else if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      jsonDiff(i < a.length ? a[i] : ABSENT, i < b.length ? b[i] : ABSENT, `${path}/${i}`, out);
    }
  } else if (a !== b && JSON.stringify(a) !== JSON.stringify(b)) {
    out.push([path || "(the whole payload)", a, b]);
  }
  return out;
}

function asJson(value) {
  if (value === ABSENT) return ABSENT;
  const text = JSON.stringify(value);
  return text.length > 400 ? text.slice(0, 400) + "…" : text;
}

function payloadDiff(da, db) {
  if (da.payload == null || db.payload == null) return paragraph("One of them no longer holds its payload.");
  const [jsonA, a] = parsed(da.payload);
  const [jsonB, b] = parsed(db.payload);
  let rows;
  if (jsonA && jsonB) {
    rows = jsonDiff(a, b, "", []).map(([at, x, y]) => [at, asJson(x), asJson(y)]);
  } else {
    const [la, lb] = [da.payload.split("\n"), db.payload.split("\n")];
    rows = [];
    for (let i = 0; i < Math.max(la.length, lb.length); i++) {
      if (la[i] !== lb[i]) rows.push([`line ${i + 1}`, la[i] ?? ABSENT, lb[i] ?? ABSENT]);
    }
  }
  if (!rows.length) {
    return paragraph(da.payload === db.payload ? "The payloads are the same, byte for byte."
      : "The payloads hold the same JSON, written differently.");
  }
  const table = diffTable(jsonA && jsonB ? "JSON pointer" : "line", da.seq, db.seq, rows);
  const out = document.createDocumentFragment();
  out.append(paragraph(`${rows.length} difference${rows.length > 1 ? "s" : ""}.`), table);
  return out;
}

function headerDiff(da, db) {
  const byName = (d) => new Map(Object.entries(d.headers).map(([name, value]) => [name.toLowerCase(), [name, value]]));
  const [a, b] = [byName(da), byName(db)];
  const rows = [];
  let same = 0;
  for (const name of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const [x, y] = [a.get(name), b.get(name)];
    if (x && y && x[1] === y[1]) { same++; continue; }
    rows.push([(x || y)[0], x ? x[1] : ABSENT, y ? y[1] : ABSENT]);
  }
  if (!rows.length) return paragraph("The headers are the same.");
  const out = document.createDocumentFragment();
  out.append(diffTable("header", da.seq, db.seq, rows), paragraph(`${same} more the same.`));
  return out;
}

function diffTable(what, seqA, seqB, rows) {
  const table = document.createElement("table");
  table.className = "diff";
  const head = document.createElement("tr");
  for (const text of [what, `#${seqA}`, `#${seqB}`]) {
    const th = document.createElement("th");
    th.textContent = text;
    head.append(th);
  }
  table.append(head, ...rows.map(([at, x, y]) => {
    const tr = document.createElement("tr");
    const side = (value, cls) => (value === ABSENT ? cell("(absent)", `${cls} absent`) : cell(value, cls));
    tr.append(cell(at, "path"), side(x, "del"), side(y, "add"));
    return tr;
  }));
  return table;
}

function move(step) {
  const visibleRows = [...document.querySelectorAll("#rows tr:not([hidden])")];
  if (!visibleRows.length) return;
  const at = visibleRows.indexOf(document.activeElement);
  const next = visibleRows[Math.max(0, Math.min(visibleRows.length - 1, at + step))];
  next.focus();
}

$("btn-replay").addEventListener("click", replay);
$("btn-edit").addEventListener("click", edit);
$("btn-redeliver").addEventListener("click", redeliver);
$("btn-curl").addEventListener("click", curl);
$("btn-save").addEventListener("click", save);
$("btn-close").addEventListener("click", close);
$("btn-compare-close").addEventListener("click", close);
$("editor").addEventListener("submit", sendEdited);
$("btn-cancel-edit").addEventListener("click", () => { $("editor").hidden = true; });
$("edit-payload").addEventListener("input", invisibleInEditor);
$("btn-raw").addEventListener("click", () => {
  raw = !raw;
  $("btn-raw").setAttribute("aria-pressed", String(raw));
  if (detail && !detail.trimmed) show($("payload"), pretty(detail.payload));
});
for (const id of ["filter-event", "filter-status"]) $(id).addEventListener("input", refilter);
$("filter-text").addEventListener("input", search);
$("filters").addEventListener("submit", (e) => e.preventDefault());
window.addEventListener("hashchange", route);
document.addEventListener("keydown", (e) => {
  const typing = e.target.matches("input, select, textarea");
  if (e.key === "Escape") { if (typing) e.target.blur(); else close(); return; }
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "/") { e.preventDefault(); $("filter-text").focus(); }
  else if (e.key === "j" || e.key === "ArrowDown") { e.preventDefault(); move(1); }
  else if (e.key === "k" || e.key === "ArrowUp") { e.preventDefault(); move(-1); }
  else if (e.key === "r") replay();
  else if (e.key === "e") edit();
  else if (e.key === "c") curl();
  else if (e.key === "s") save();
});

load().then(() => { live(); route(); });
