"use strict";
// The page talks only to its own server: uploads, the job event stream, results, and the camera socket.

const ACTIVE = new Set(["uploading", "queued", "running"]);

const $ = (sel) => document.querySelector(sel);
const pending = [];            // File objects dropped but not yet sent
const localBefore = new Map(); // job id -> object URL of the original photo, kept in this tab only
const uploads = new Map();     // temporary id -> upload state shown before the server knows the job
const cards = new Map();       // job id -> <li>
let serverJobs = [];

// ---- settings: one control per option the server offers (/api/options), none written here ------
// Kinds: choice (a select), multiple (checkboxes), switch (one checkbox), number (a slider), level
// (named values that depend on another option's value, as a strength depends on the method chosen),
// text (a value the server's option parser reads, such as time ranges).
let fields = [];
const controlId = (name) => name.replaceAll("_", "-");
// The settings form is never sent (no inline handler: the page's policy allows no inline script).
$("#settings").addEventListener("submit", (e) => e.preventDefault());

function buildControls(list) {
  fields = list;
  $("#settings").replaceChildren(...fields.map(control));
}

function control(field) {
  if (field.kind === "multiple") {
    const set = document.createElement("fieldset");
    const legend = document.createElement("legend");
    legend.textContent = field.label;
    set.append(legend, ...field.choices.map(([value, text]) => {
      const label = document.createElement("label");
      const box = document.createElement("input");
      Object.assign(box, { type: "checkbox", name: field.name, value, checked: field.default.includes(value) });
      label.append(box, ` ${text}`);
      return label;
    }));
    set.title = field.help;
    return set;
  }
  const label = document.createElement("label");
  label.title = field.help;
  if (field.kind === "switch") {
    const box = document.createElement("input");
    Object.assign(box, { type: "checkbox", name: field.name, id: controlId(field.name), checked: field.default });
    label.append(box, ` ${field.label}`);
    return label;
  }
  label.append(`${field.label} `);
  if (field.kind === "text") {
    const input = document.createElement("input");
    Object.assign(input, { type: "text", name: field.name, id: controlId(field.name), value: field.default ?? "",
                           placeholder: field.placeholder ?? "" });
    label.append(input);
    return label;
  }
  if (field.kind === "number") {
    const shown = document.createElement("output");
    shown.id = `${controlId(field.name)}-value`;
    const slider = document.createElement("input");
    Object.assign(slider, { type: "range", name: field.name, id: controlId(field.name),
                            min: field.min, max: field.max, step: field.step, value: field.default });
    const show = () => { shown.textContent = `${slider.value}${field.unit}`; };
    slider.addEventListener("input", show);
    show();
    label.append(shown, slider);
    return label;
  }
  const select = document.createElement("select");
  Object.assign(select, { name: field.name, id: controlId(field.name) });
  const choices = field.kind === "level" ? field.levels.map(([value, text]) => [value, text]) : field.choices;
  select.append(...choices.map(([value, text]) => new Option(text, value, false, value === field.default)));
  label.append(select);
  return label;
}

function settings() {
  const params = new URLSearchParams();
  for (const field of fields) {
    if (field.kind === "multiple") {
      const chosen = [...document.querySelectorAll(`input[name=${field.name}]:checked`)].map((e) => e.value);
      if (chosen.length) params.set(field.name, chosen.join(","));
      continue;
    }
    const input = document.getElementById(controlId(field.name));
    if (field.kind === "switch") { params.set(field.name, input.checked); continue; }
    const value = input.value;
    if (field.kind === "text") { if (value.trim()) params.set(field.name, value.trim()); continue; }
    if (field.kind !== "level") { params.set(field.name, value); continue; }
    const level = field.levels.find(([name]) => name === value);
    const picked = level && level[2][params.get(field.by)];
    if (picked !== undefined && picked !== null) params.set(field.name, picked);
  }
  return params;
}

// ---- choosing files ---------------------------------------------------------------------------
function addFiles(files) {
  for (const f of files) pending.push(f);
  renderPending();
}
function renderPending() {
  const list = $("#pending-list");
  list.replaceChildren(...pending.map((f) => {
    const li = document.createElement("li");
    li.textContent = `${f.name} (${formatSize(f.size)})`;
    return li;
  }));
  $("#pending").hidden = pending.length === 0;
  $("#pending-count").textContent = pending.length > 1 ? `${pending.length} files` : "";
}
const drop = $("#drop");
["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
drop.addEventListener("drop", (e) => addFiles(e.dataTransfer.files));
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("#file-input").click(); } });
$("#file-input").addEventListener("change", (e) => { addFiles(e.target.files); e.target.value = ""; });
$("#clear-pending").addEventListener("click", () => { pending.length = 0; renderPending(); });
$("#start").addEventListener("click", () => {
  const files = pending.splice(0);
  renderPending();
  const params = settings();
  files.reduce((chain, f) => chain.then(() => upload(f, params)), Promise.resolve());
});

// ---- uploading: the file is the raw request body; the server names and types it -----------------
function upload(file, params) {
  const temp = `upload-${Math.random().toString(36).slice(2)}`;
  const state = { id: temp, name: file.name, kind: file.type.startsWith("video") ? "video" : "image",
                  status: "uploading", done_frames: 0, total_frames: null, error: null };
  uploads.set(temp, state);
  render();
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    // Cancelling a card that is still uploading stops the upload: the server then deletes what
    // it had received, and no job is created.
    state.abort = () => xhr.abort();
    const query = new URLSearchParams(params);
    query.set("name", file.name);
    xhr.open("POST", `/api/jobs?${query}`);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) { state.done_frames = e.loaded; state.total_frames = e.total; render(); }
    };
    xhr.onload = () => {
      uploads.delete(temp);
      if (xhr.status === 201) {
        const job = JSON.parse(xhr.responseText);
        if (job.kind === "image") localBefore.set(job.id, URL.createObjectURL(file));
        refresh();
      } else {
        state.status = "failed";
        state.error = errorText(xhr);
        uploads.set(temp, state);
      }
      render();
      resolve();
    };
    xhr.onerror = () => { state.status = "failed"; state.error = "upload failed (server unreachable)"; render(); resolve(); };
    xhr.onabort = () => {
      state.status = "cancelled";
      state.error = "cancelled while uploading; nothing was kept on the server";
      render();
      resolve();
    };
    xhr.send(file);
  });
}
function errorText(xhr) {
  try { return JSON.parse(xhr.responseText).detail; } catch { return `upload failed (${xhr.status})`; }
}

// ---- job list: server-sent events, with a plain fetch as the first picture ------------------------
async function refresh() {
  const r = await fetch("/api/jobs");
  if (r.ok) { serverJobs = await r.json(); render(); }
}
function listen() {
  const events = new EventSource("/api/events");
  events.addEventListener("jobs", (e) => { serverJobs = JSON.parse(e.data); render(); });
}

function render() {
  const jobs = [...serverJobs, ...uploads.values()];
  const seen = new Set();
  for (const job of jobs) {
    seen.add(job.id);
    let li = cards.get(job.id);
    if (!li) {
      li = $("#job-template").content.firstElementChild.cloneNode(true);
      li.dataset.id = job.id;
      cards.set(job.id, li);
      $("#jobs").prepend(li);
      wireCard(li, job.id);
    }
    updateCard(li, job);
  }
  for (const [id, li] of cards) if (!seen.has(id)) { li.remove(); cards.delete(id); }
  $("#empty").hidden = jobs.length > 0;
  $("#download-all").hidden = serverJobs.filter((j) => j.has_result).length < 2;
}

function wireCard(li, id) {
  li.querySelector(".cancel").addEventListener("click", () => {
    const sending = uploads.get(id);
    if (sending) sending.abort();
    else fetch(`/api/jobs/${id}/cancel`, { method: "POST" });
  });
  li.querySelector(".remove").addEventListener("click", async () => {
    if (uploads.has(id)) { uploads.get(id).abort(); uploads.delete(id); render(); return; }
    await fetch(`/api/jobs/${id}`, { method: "DELETE" });
    const url = localBefore.get(id);
    if (url) { URL.revokeObjectURL(url); localBefore.delete(id); }
    refresh();
  });
}

function updateCard(li, job) {
  li.querySelector(".name").textContent = job.name;
  const badge = li.querySelector(".badge");
  badge.textContent = job.status;
  badge.className = `badge ${job.status}`;
  li.dataset.status = job.status;
  const bar = li.querySelector("progress");
  bar.hidden = !ACTIVE.has(job.status);
  if (job.total_frames) { bar.max = job.total_frames; bar.value = Math.min(job.done_frames, job.total_frames); }
  else bar.removeAttribute("value");
  const detail = li.querySelector(".detail");
  detail.classList.toggle("error", Boolean(job.error) && job.status !== "done");
  detail.textContent = describe(job);
  li.querySelector(".cancel").hidden = !ACTIVE.has(job.status);
  const link = li.querySelector(".download");
  link.hidden = !job.has_result;
  if (job.has_result) link.href = `/api/jobs/${job.id}/result`;
  const audit = li.querySelector(".audit");
  audit.hidden = !job.has_audit;
  if (job.has_audit) audit.href = `/api/jobs/${job.id}/audit`;
  li.querySelector(".remove").hidden = ACTIVE.has(job.status) && job.status !== "uploading";
  const view = li.querySelector(".view");
  if (job.has_result && view.dataset.shown !== job.id) {
    view.dataset.shown = job.id;
    view.replaceChildren(job.kind === "image" ? compareView(job) : videoView(job));
  } else if (!job.has_result && view.dataset.shown) {
    view.dataset.shown = "";
    view.replaceChildren();
  }
}

function describe(job) {
  if (job.status === "uploading") return job.total_frames ? `${Math.round(100 * job.done_frames / job.total_frames)}% sent` : "sending";
  if (job.status === "running" && job.total_frames) return `frame ${job.done_frames} of ${job.total_frames}`;
  if (job.status === "running") return job.done_frames ? `frame ${job.done_frames}` : "starting";
  if (job.status === "done") {
    const faces = `${job.boxes} face${job.boxes === 1 ? "" : "s"} hidden`;
    return job.kind === "video" ? `${faces} over ${job.frames} frames` : faces;
  }
  return job.error || "";
}

// Before/after: the result underneath, the original on top clipped to the left of the slider.
function compareView(job) {
  const box = document.createElement("div");
  box.className = "compare";
  const after = new Image();
  after.className = "after";
  after.alt = `${job.name}, anonymized`;
  after.src = `/api/jobs/${job.id}/result?download=false`;
  box.append(after);
  const original = localBefore.get(job.id);
  if (!original) {
    const note = document.createElement("p");
    note.className = "note";
    note.textContent = "The original is not kept on the server, so only the result is shown here.";
    const wrap = document.createElement("div");
    wrap.append(box, note);
    return wrap;
  }
  const before = new Image();
  before.className = "before";
  before.alt = `${job.name}, original`;
  before.src = original;
  const divider = document.createElement("div");
  divider.className = "divider";
  const slider = document.createElement("input");
  slider.type = "range";
  slider.min = 0; slider.max = 100; slider.value = 50;
  slider.setAttribute("aria-label", "before / after");
  const left = tag("original", "left");
  const right = tag("anonymized", "right");
  const place = () => {
    before.style.clipPath = `inset(0 ${100 - slider.value}% 0 0)`;
    divider.style.left = `${slider.value}%`;
  };
  slider.addEventListener("input", place);
  place();
  box.append(before, divider, left, right, slider);
  return box;
}
function tag(text, side) {
  const t = document.createElement("span");
  t.className = `tag ${side}`;
  t.textContent = text;
  return t;
}

function videoView(job) {
  const wrap = document.createElement("div");
  const video = document.createElement("video");
  video.controls = true;
  video.preload = "metadata";
  video.src = `/api/jobs/${job.id}/result?download=false`;
  wrap.append(video);
  const edit = document.createElement("a");
  edit.className = "button review-link";
  edit.href = `/static/review.html?job=${job.id}`;
  edit.textContent = "Review and correct";
  const line = document.createElement("p");
  line.append(edit);
  wrap.append(line);
  if (job.has_review) {
    const review = document.createElement("div");
    review.className = "review";
    const h = document.createElement("h3");
    h.textContent = "Frames to check (flagged by the review)";
    const sheet = new Image();
    sheet.alt = "flagged frames";
    sheet.src = `/api/jobs/${job.id}/review/contact_sheet.png`;
    review.append(h, sheet);
    wrap.append(review);
  }
  return wrap;
}

function formatSize(n) {
  if (n < 1e6) return `${Math.max(1, Math.round(n / 1e3))} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

// ---- tabs -------------------------------------------------------------------------------------
for (const tab of document.querySelectorAll("[role=tab]")) {
  tab.addEventListener("click", () => {
    for (const t of document.querySelectorAll("[role=tab]")) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
    }
  });
}

// ---- live camera: only frames that came back from the server are ever drawn ------------------------
const live = { stream: null, socket: null, video: null, busy: false, frames: 0, since: 0 };
$("#live-start").addEventListener("click", startLive);
$("#live-stop").addEventListener("click", stopLive);

async function startLive() {
  const status = $("#live-status");
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (err) {
    status.textContent = `camera not available: ${err.message}`;
    return;
  }
  // The camera's own picture goes into a video element that is never attached to the page.
  live.video = document.createElement("video");
  live.video.muted = true;
  live.video.playsInline = true;
  live.video.srcObject = live.stream;
  await live.video.play();
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const params = settings();
  live.socket = new WebSocket(`${proto}://${location.host}/api/live?${params}`);
  live.socket.binaryType = "blob";
  live.socket.onopen = () => { status.textContent = "connected"; live.since = performance.now(); live.frames = 0; sendFrame(); };
  live.socket.onmessage = async (e) => {
    live.busy = false;
    if (typeof e.data === "string") {
      status.textContent = JSON.parse(e.data).error;
    } else {
      const bitmap = await createImageBitmap(e.data);
      const canvas = $("#live-canvas");
      canvas.width = bitmap.width; canvas.height = bitmap.height;
      canvas.getContext("2d").drawImage(bitmap, 0, 0);
      live.frames += 1;
      const seconds = (performance.now() - live.since) / 1000;
      status.textContent = `${(live.frames / seconds).toFixed(1)} frames/s`;
    }
    sendFrame();
  };
  live.socket.onclose = (e) => { if (live.stream) status.textContent = `disconnected ${e.reason || ""}`; stopLive(); };
  $("#live-start").disabled = true;
  $("#live-stop").disabled = false;
}

function sendFrame() {
  if (!live.socket || live.socket.readyState !== WebSocket.OPEN || live.busy || !live.video) return;
  const w = live.video.videoWidth, h = live.video.videoHeight;
  if (!w || !h) { setTimeout(sendFrame, 50); return; }
  const grab = document.createElement("canvas");  // off-page: never shown
  grab.width = w; grab.height = h;
  grab.getContext("2d").drawImage(live.video, 0, 0, w, h);
  live.busy = true;
  grab.toBlob((blob) => { if (live.socket && live.socket.readyState === WebSocket.OPEN) live.socket.send(blob); else live.busy = false; },
              "image/jpeg", 0.85);
}

function stopLive() {
  if (live.socket) { live.socket.onclose = null; live.socket.close(); }
  if (live.stream) live.stream.getTracks().forEach((t) => t.stop());
  Object.assign(live, { stream: null, socket: null, video: null, busy: false });
  $("#live-start").disabled = false;
  $("#live-stop").disabled = true;
}

// ---- start ------------------------------------------------------------------------------------
// "Anonymize" and "Start camera" stay disabled until the settings are on the page, so no job
// starts with choices the user could not see; if they cannot be loaded, the page says so
// instead of guessing.
fetch("/api/options").then((r) => {
  if (!r.ok) throw new Error(`the server answered ${r.status}`);
  return r.json();
}).then((o) => {
  buildControls(o.fields);
  $("#start").disabled = false;
  $("#live-start").disabled = false;
  const hours = o.keep_seconds / 3600;
  $("#retention").textContent = `Results are deleted from the server ${hours >= 1 ? `${+hours.toFixed(1)} h` : `${Math.round(o.keep_seconds / 60)} min`} after they finish. Originals of photos are never kept; a video's original is kept until then for its review page, which shows it anonymized.`;
}).catch((err) => {
  const message = document.createElement("p");
  message.className = "error";
  message.textContent = `The settings could not be loaded (${err.message}); reload the page to try again.`;
  $("#settings").replaceChildren(message);
});
refresh();
listen();
