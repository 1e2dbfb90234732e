// The hookfwd inspector page: a live list over SSE, filters, a detail view and its buttons. No framework.
"use strict";

const token = document.querySelector('meta[name="hookfwd-token"]').content;
const $ = (id) => document.getElementById(id);
const rows = new Map(); // seq -> summary
let selected = null;
let raw = false;

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
  if (status && status !== "error" && (row.status == null || String(row.status)[0] !== status[0])) return false;
  if (text) {
    const hay = [row.guid, row.kind, row.source, row.via, statusText(row)].join(" ").toLowerCase();
    if (!hay.includes(text)) return false;
  }
  return true;
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function render(row) {
  let tr = document.querySelector(`#rows tr[data-seq="${row.seq}"]`);
  const fresh = !tr;
  if (fresh) {
    tr = document.createElement("tr");
    tr.dataset.seq = row.seq;
    tr.tabIndex = 0;
    tr.addEventListener("click", () => open(row.seq));
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(row.seq); } });
  }
  const source = cell(row.source);
  source.title = row.hook_id == null ? row.source : `${row.source} hook ${row.hook_id}`;
  const guid = cell(row.guid.slice(0, 8) + "…", "guid");
  guid.title = row.guid;
  tr.replaceChildren(
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
  for (const [on, label, title] of [[row.redelivery, "redelivery", "GitHub redelivered it"], [row.replay, "replay", "replayed from here"], [row.attempts > 1, row.attempts + " attempts", "retried"]]) {
    if (!on) continue;
    const span = document.createElement("span");
    span.className = "mark";
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
  rows.set(row.seq, row);
  render(row);
  if (selected === row.seq) open(row.seq, true);
}

function refilter() {
  for (const row of rows.values()) render(row);
}

async function load() {
  const list = await (await fetch("/api/deliveries")).json();
  for (const row of list) upsert(row);
  $("empty").hidden = rows.size > 0;
}

function live() {
  const source = new EventSource("/api/events");
  source.onopen = () => $("live").classList.add("on");
  source.onerror = () => $("live").classList.remove("on");
  source.onmessage = (e) => upsert(JSON.parse(e.data));
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
  if (raw || text == null) return text ?? "(not forwarded yet)";
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
}

async function open(seq, quiet) {
  const answer = await fetch(`/api/deliveries/${seq}`);
  if (!answer.ok) { notice("This delivery is no longer held."); return; }
  const d = await answer.json();
  selected = seq;
  for (const tr of document.querySelectorAll("#rows tr")) tr.setAttribute("aria-selected", String(tr.dataset.seq == seq));
  $("detail").hidden = false;
  $("detail-title").textContent = `${d.kind} · ${d.guid}${d.replay ? " · replay" : ""}`;
  kv($("req-headers"), d.headers);
  $("payload").textContent = d.trimmed
    ? "(dropped to keep the inspector's memory bounded; Redeliver on GitHub still works)"
    : pretty(d.payload);
  $("payload").dataset.text = d.payload ?? "";
  const box = $("attempts");
  box.replaceChildren(...d.attempts_detail.map((a, i) => {
    const div = document.createElement("div");
    div.className = "attempt";
    const h = document.createElement("div");
    const what = a.status != null ? `answered ${a.status} in ${a.latency_ms} ms` : `unreachable: ${a.error}`;
    h.textContent = `#${i + 1} · ${new Date(a.at).toLocaleTimeString()} · ${what}`;
    h.className = a.status != null ? "s" + String(a.status)[0] : "serr";
    div.append(h);
    if (a.answer) {
      const t = document.createElement("table");
      t.className = "kv";
      kv(t, a.answer.headers);
      const body = document.createElement("pre");
      body.textContent = a.answer.body + (a.answer.body_truncated ? `\n… ${a.answer.body_length} bytes in all` : "");
      div.append(t, body);
    }
    return div;
  }));
  if (!quiet) { notice(""); $("btn-replay").focus(); }
}

function close() {
  $("detail").hidden = true;
  const tr = document.querySelector(`#rows tr[data-seq="${selected}"]`);
  selected = null;
  if (tr) { tr.setAttribute("aria-selected", "false"); tr.focus(); }
}

function notice(text) { $("notice").textContent = text; }

async function post(path) {
  const answer = await fetch(path, { method: "POST", headers: { "X-Hookfwd-Token": token } });
  return [answer.ok, await answer.json()];
}

async function replay() {
  if (selected == null) return;
  notice("Replaying…");
  const [ok, body] = await post(`/api/deliveries/${selected}/replay`);
  if (!ok) return notice(body.error);
  notice(body.status != null ? `Replayed: the handler answered ${body.status}.` : `Replay failed: ${body.error}.`);
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
  catch { $("payload").textContent = text; notice("The clipboard is not available here; the command is shown as the payload."); }
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

function move(step) {
  const visible = [...document.querySelectorAll("#rows tr:not([hidden])")];
  if (!visible.length) return;
  const at = visible.indexOf(document.activeElement);
  const next = visible[Math.max(0, Math.min(visible.length - 1, at + step))];
  next.focus();
}

$("btn-replay").addEventListener("click", replay);
$("btn-redeliver").addEventListener("click", redeliver);
$("btn-curl").addEventListener("click", curl);
$("btn-save").addEventListener("click", save);
$("btn-close").addEventListener("click", close);
$("btn-raw").addEventListener("click", () => {
  raw = !raw;
  $("btn-raw").setAttribute("aria-pressed", String(raw));
  $("payload").textContent = pretty($("payload").dataset.text);
});
for (const id of ["filter-event", "filter-status", "filter-text"]) $(id).addEventListener("input", refilter);
$("filters").addEventListener("submit", (e) => e.preventDefault());
document.addEventListener("keydown", (e) => {
  const typing = e.target.matches("input, select");
  if (e.key === "Escape") { if (typing) e.target.blur(); else close(); return; }
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "/") { e.preventDefault(); $("filter-text").focus(); }
  else if (e.key === "j" || e.key === "ArrowDown") { e.preventDefault(); move(1); }
  else if (e.key === "k" || e.key === "ArrowUp") { e.preventDefault(); move(-1); }
  else if (e.key === "r") replay();
  else if (e.key === "c") curl();
  else if (e.key === "s") save();
});

load().then(live);
