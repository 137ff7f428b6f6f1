"use strict";
// The status page of `streamer serve`: polls /api/status once a second with the token kept for this
// browser tab (sessionStorage), shows jobs, workers, backlogs and batches, the latest frame of the selected
// running job, and cancels jobs.

const TOKEN_KEY = "streamer-token";
const ACTIVE = new Set(["queued", "running", "lost"]);
let selected = null;     // the job whose preview shows
let previewUrl = null;   // the object URL of the preview shown (revoked when replaced)
let timer = null;

class Unauthorized extends Error {}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function takeTokenFromAddress() {
  // `streamer serve` prints http://host:port/#token=...: the fragment never reaches a server or a log
  const match = location.hash.match(/^#token=(.+)$/);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers.Authorization = `Bearer ${token()}`;
  const response = await fetch(path, Object.assign({}, options, {headers, cache: "no-store"}));
  if (response.status === 401) throw new Unauthorized("the token was not accepted");
  return response;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (className) td.className = className;
  return td;
}

function when(seconds) {
  if (!seconds) return "";
  const date = new Date(seconds * 1000);
  const today = new Date().toDateString() === date.toDateString();
  return today ? date.toLocaleTimeString() : date.toLocaleString();
}

function fill(id, rows, build, empty) {
  const body = document.querySelector(`#${id} tbody`);
  if (!rows.length && empty) {
    const td = cell(empty, "muted");
    td.colSpan = document.querySelectorAll(`#${id} thead th`).length;
    const tr = document.createElement("tr");
    tr.append(td);
    body.replaceChildren(tr);
    return;
  }
  body.replaceChildren(...rows.map(build));
}

function progressCell(job) {
  const td = document.createElement("td");
  if (job.total) {
    const bar = document.createElement("progress");
    bar.max = job.total;
    bar.value = Math.min(job.done, job.total);
    td.append(bar);
  } else if (job.state === "running") {
    td.append(document.createElement("progress"));  // running, length unknown: busy
  } else if (job.state === "queued") {
    td.textContent = "waiting";
    td.className = "muted";
  }
  return td;  // an ended job without a length shows no bar: nothing is busy
}

function jobRow(job) {
  const tr = document.createElement("tr");
  tr.dataset.job = job.job;
  if (job.job === selected) tr.className = "selected";
  tr.onclick = () => { selected = job.job; refresh(); };
  const action = document.createElement("td");
  if (ACTIVE.has(job.state)) {
    const button = document.createElement("button");
    button.textContent = "cancel";
    button.onclick = event => { event.stopPropagation(); cancel(job.job, button); };
    action.append(button);
  }
  tr.append(
    cell(job.job), cell(job.state, `state-${job.state}`), progressCell(job),
    cell(job.total ? `${job.done}/${job.total}` : job.done),
    cell(ACTIVE.has(job.state) ? job.fps.toFixed(1) : ""),
    cell(job.eta == null ? "" : `${Math.round(job.eta)} s`),
    cell(job.input, "path"), cell(job.output, "path"), cell(job.model), cell(job.effect),
    cell(when(job.submitted)), cell(when(job.started)), cell(when(job.ended)),
    cell(job.reason, "note"), action);
  return tr;
}

async function cancel(job, button) {
  if (!confirm(`Cancel job ${job}?`)) return;
  button.disabled = true;
  try {
    const response = await api(`/api/jobs/${encodeURIComponent(job)}/cancel`,
                               {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"});
    if (!response.ok) { alert((await response.json()).error); button.disabled = false; }
  } catch (error) {
    if (error instanceof Unauthorized) return askForToken(error.message);
    alert(`cannot cancel: ${error.message}`);
    button.disabled = false;
  }
  refresh();
}

function showText(box, text) {
  box.replaceChildren(Object.assign(document.createElement("p"), {className: "muted", textContent: text}));
}

async function showPreview(jobs) {
  const box = document.getElementById("preview");
  const job = jobs.find(j => j.job === selected);
  if (!job) { selected = null; box.replaceChildren(); return; }
  if (job.state !== "running") {  // an ended or waiting job has no frame to fetch
    if (previewUrl) { URL.revokeObjectURL(previewUrl); previewUrl = null; }
    showText(box, job.state === "queued" ? `job ${job.job} is waiting for a runner` :
                                          `job ${job.job} ${job.state}: no preview`);
    return;
  }
  const response = await api(`/api/jobs/${encodeURIComponent(job.job)}/preview.jpg`);
  if (!response.ok) { showText(box, `job ${job.job}: no preview yet`); return; }
  const url = URL.createObjectURL(await response.blob());
  const img = document.createElement("img");
  img.alt = `latest frame of job ${job.job}`;
  img.src = url;
  box.replaceChildren(Object.assign(document.createElement("p"), {textContent: `job ${job.job}`}), img);
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = url;
}

function showState(state) {
  if (!selected) { const running = state.jobs.find(j => j.state === "running"); if (running) selected = running.job; }
  fill("jobs", state.jobs, jobRow, "no jobs");
  fill("workers", state.workers, w => {
    const tr = document.createElement("tr");
    tr.append(cell(w.name), cell(w.model), cell(w.batch), cell(w.fps.toFixed(1)), cell(w.frames),
              cell(`${w.last_seen} s ago`));
    return tr;
  }, "no workers");
  fill("backlogs", state.backlogs, b => {
    const tr = document.createElement("tr");
    tr.append(cell(b.stream), cell(b.length), cell(b.pending), cell(b.lag ?? ""));
    return tr;
  }, "no work streams");
  document.getElementById("batches-section").hidden = !state.batches.length;
  fill("batches", state.batches, b => {
    const tr = document.createElement("tr");
    tr.append(cell(b.batch), cell(b.dest, "path"), cell(b.done), cell(b.failed), cell(b.left), cell(b.fps.toFixed(1)),
              cell(b.eta == null ? "" : `${Math.round(b.eta)} s`));
    return tr;
  });
}

async function refresh() {
  clearTimeout(timer);
  const updated = document.getElementById("updated");
  try {
    let response;
    try {
      response = await api("/api/status");
    } catch (error) {
      if (error instanceof Unauthorized) throw error;
      throw new Error("cannot reach streamer serve (stopped, or the network is down); retrying");
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
    showState(body);
    await showPreview(body.jobs);
    updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
    updated.className = "muted";
  } catch (error) {
    if (error instanceof Unauthorized) return askForToken(token() ? error.message : "");
    updated.textContent = error.message;
    updated.className = "error";
  }
  timer = setTimeout(refresh, 1000);
}

function askForToken(message) {
  clearTimeout(timer);
  sessionStorage.removeItem(TOKEN_KEY);
  document.getElementById("status").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message || "";
  document.getElementById("token").focus();
}

function start() {
  takeTokenFromAddress();
  document.getElementById("login").addEventListener("submit", event => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
    document.getElementById("login").hidden = true;
    document.getElementById("status").hidden = false;
    refresh();
  });
  document.getElementById("status").hidden = false;
  refresh();
}

document.addEventListener("DOMContentLoaded", start);
