// The review page: scrub a finished video, correct its detections, re-render.
// Every frame comes from the server already anonymized (GET /api/jobs/ID/frames/N); the
// original only with the "show original" toggle, which the server logs.
"use strict";
const $ = (s) => document.querySelector(s);
const jobId = new URLSearchParams(location.search).get("job");
const api = (path) => `/api/jobs/${jobId}${path}`;
let data = null;        // GET /detections: frames, size, rows, tracks, flagged, versions
let current = 0;        // frame shown
let selected = null;    // track id
let adding = false;

async function call(method, path, body) {
  const res = await fetch(api(path), {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const out = res.status === 204 ? null : await res.json();
  if (!res.ok) throw new Error(out && out.detail ? JSON.stringify(out.detail) : res.statusText);
  return out;
}
function say(text, bad = false) {
  const m = $("#message");
  m.textContent = text;
  m.classList.toggle("error", bad);
}

async function load() {
  const job = await call("GET", "");
  $("#job-name").textContent = job.name;
  data = await call("GET", "/detections");
  $("#scrubber").max = data.frames - 1;
  $("#stage").style.aspectRatio = `${data.width} / ${data.height}`;
  drawTimeline();
  drawFlagged();
  drawVersions();
  show(current);
}

function show(index) {
  if (!data) return; // not loaded (yet, or at all): nothing to show
  current = Math.max(0, Math.min(index, data.frames - 1));
  $("#scrubber").value = current;
  $("#frame-label").textContent = `frame ${current + 1} of ${data.frames}`;
  const original = $("#show-original").checked ? "&original=true" : "";
  $("#frame").src = api(`/frames/${current}?v=${Date.now()}${original}`);
  drawBoxes();
}

// Outlines of the boxes on this frame, in percent of the frame so they follow the page size.
function drawBoxes() {
  const layer = $("#boxes");
  layer.replaceChildren();
  for (const row of data.rows.filter((r) => r.frame === current)) {
    const el = document.createElement("div");
    el.className = "box";
    if (row.hide === false) el.classList.add("shown");
    if (row.score <= 0) el.classList.add("filled");
    if (row.track_id === selected) el.classList.add("selected");
    el.dataset.track = row.track_id;
    place(el, [row.x1, row.y1, row.x2, row.y2]);
    const handle = document.createElement("span");
    handle.className = "handle";
    el.append(handle);
    el.addEventListener("pointerdown", (e) => grab(e, row, e.target === handle));
    layer.append(el);
  }
  const track = data.tracks.find((t) => t.track_id === selected);
  $("#hide-track").hidden = $("#delete-track").hidden = !track;
  if (track) {
    $("#selection").textContent = `track ${track.track_id}: frames ${track.start + 1} to ${track.end + 1}`;
    $("#hide-track").textContent = track.hide ? "Do not hide this track" : "Hide this track again";
  }
}
function place(el, [x1, y1, x2, y2]) {
  el.style.left = `${(100 * x1) / data.width}%`;
  el.style.top = `${(100 * y1) / data.height}%`;
  el.style.width = `${(100 * (x2 - x1)) / data.width}%`;
  el.style.height = `${(100 * (y2 - y1)) / data.height}%`;
}
// Page pixels to frame pixels.
function toFrame(e) {
  const r = $("#stage").getBoundingClientRect();
  return [
    Math.max(0, Math.min(data.width, ((e.clientX - r.left) * data.width) / r.width)),
    Math.max(0, Math.min(data.height, ((e.clientY - r.top) * data.height) / r.height)),
  ];
}

// Drag a box to move it, its corner handle to resize it; the edit is saved on release.
function grab(e, row, resize) {
  if (adding) return;
  e.preventDefault();
  e.stopPropagation();
  selected = row.track_id;
  const el = e.currentTarget;
  const [sx, sy] = toFrame(e);
  let box = [row.x1, row.y1, row.x2, row.y2];
  const move = (ev) => {
    const [x, y] = toFrame(ev);
    const dx = x - sx, dy = y - sy;
    box = resize
      ? [row.x1, row.y1, Math.max(row.x1 + 4, row.x2 + dx), Math.max(row.y1 + 4, row.y2 + dy)]
      : [row.x1 + dx, row.y1 + dy, row.x2 + dx, row.y2 + dy];
    place(el, box);
  };
  const up = async () => {
    removeEventListener("pointermove", move);
    removeEventListener("pointerup", up);
    if (box[0] !== row.x1 || box[1] !== row.y1 || box[2] !== row.x2 || box[3] !== row.y2) {
      await edit({ op: "move", frame: current, track_id: row.track_id, box });
    } else drawBoxes();
  };
  addEventListener("pointermove", move);
  addEventListener("pointerup", up);
}

// Add mode: drag a rectangle on the frame; the server follows it forwards and backwards.
$("#stage").addEventListener("pointerdown", (e) => {
  if (!adding) { selected = null; drawBoxes(); return; }
  e.preventDefault();
  const [sx, sy] = toFrame(e);
  const el = document.createElement("div");
  el.className = "box drawing";
  $("#boxes").append(el);
  let box = [sx, sy, sx, sy];
  const move = (ev) => {
    const [x, y] = toFrame(ev);
    box = [Math.min(sx, x), Math.min(sy, y), Math.max(sx, x), Math.max(sy, y)];
    place(el, box);
  };
  const up = async () => {
    removeEventListener("pointermove", move);
    removeEventListener("pointerup", up);
    setAdding(false);
    if (box[2] - box[0] < 4 || box[3] - box[1] < 4) { drawBoxes(); return; }
    say("Following the new box through the video...");
    const out = await edit({ op: "add", frame: current, box });
    if (out) {
      const t = data.tracks.find((x) => x.track_id === out.track_id);
      say(`Box added to track ${out.track_id}, frames ${t.start + 1} to ${t.end + 1}.`);
    }
  };
  addEventListener("pointermove", move);
  addEventListener("pointerup", up);
});
function setAdding(on) {
  adding = on;
  $("#add-mode").setAttribute("aria-pressed", String(on));
  $("#stage").classList.toggle("adding", on);
}
$("#add-mode").addEventListener("click", () => setAdding(!adding));

async function edit(body) {
  try {
    const out = await call("POST", "/edits", body);
    data.rows = out.rows;
    data.tracks = out.tracks;
    selected = out.track_id;
    drawTimeline();
    show(current);
    return out;
  } catch (err) {
    say(`Not saved: ${err.message}`, true);
    drawBoxes();
    return null;
  }
}

$("#delete-track").addEventListener("click", async () => {
  if (selected === null) return;
  if (!confirm(`Delete track ${selected} on every frame? Its face will not be hidden anywhere.`)) return;
  const track = selected;
  if (await edit({ op: "delete", track_id: track })) { selected = null; drawBoxes(); say(`Track ${track} deleted.`); }
});
$("#hide-track").addEventListener("click", async () => {
  const track = data.tracks.find((t) => t.track_id === selected);
  if (track) await edit({ op: "hide", track_id: track.track_id, hide: !track.hide });
});

// Timeline: a mark where each track starts and ends, and on frames only filled in by tracking.
function drawTimeline() {
  const line = $("#timeline");
  line.replaceChildren();
  const mark = (frame, kind, title) => {
    const m = document.createElement("button");
    m.className = `mark ${kind}`;
    m.title = title;
    m.style.left = `${(100 * frame) / Math.max(1, data.frames - 1)}%`;
    m.addEventListener("click", () => show(frame));
    line.append(m);
  };
  for (const t of data.tracks) {
    for (const f of t.filled) mark(f, "filled", `track ${t.track_id}: frame ${f + 1} only filled in`);
    mark(t.start, "start", `track ${t.track_id} starts (frame ${t.start + 1})`);
    mark(t.end, "end", `track ${t.track_id} ends (frame ${t.end + 1})`);
  }
}
function drawFlagged() {
  const strip = $("#flagged");
  strip.replaceChildren();
  if (!data.flagged.length) strip.textContent = "No frame was flagged.";
  for (const f of data.flagged) {
    const b = document.createElement("button");
    b.className = "quiet";
    b.textContent = `frame ${f + 1}`;
    b.addEventListener("click", () => show(f));
    strip.append(b);
  }
}
function drawVersions() {
  const list = $("#versions");
  list.replaceChildren();
  data.versions.forEach((name, i) => {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = api(`/result?version=${i + 1}`);
    a.textContent = `version ${i + 1}${i === data.versions.length - 1 ? " (latest)" : ""}`;
    a.className = "version";
    li.append(a);
    list.append(li);
  });
}

$("#scrubber").addEventListener("input", (e) => show(Number(e.target.value)));
$("#show-original").addEventListener("change", () => show(current));
addEventListener("keydown", (e) => {
  if (e.target === $("#scrubber")) return; // the slider steps by itself
  if (e.key === "ArrowRight") show(current + 1);
  if (e.key === "ArrowLeft") show(current - 1);
});

$("#rerender").addEventListener("click", async () => {
  $("#rerender").disabled = true;
  try {
    await call("POST", "/rerender");
    $("#render-status").textContent = "rendering...";
    for (;;) {
      await new Promise((ok) => setTimeout(ok, 500));
      const job = await call("GET", "");
      if (job.status === "done") {
        $("#render-status").textContent = job.error || "done: a new version is ready";
        $("#render-status").dataset.state = job.error ? "failed" : "done";
        break;
      }
      if (!["queued", "running"].includes(job.status)) {
        $("#render-status").textContent = job.error || job.status;
        $("#render-status").dataset.state = "failed";
        break;
      }
      $("#render-status").textContent = job.total_frames ? `frame ${job.done_frames} of ${job.total_frames}` : "rendering...";
    }
    data = await call("GET", "/detections");
    drawVersions();
    show(current);
  } catch (err) {
    say(`Re-render failed: ${err.message}`, true);
  } finally {
    $("#rerender").disabled = false;
  }
});

if (jobId) load().catch((err) => say(err.message, true));
else say("No job chosen: open this page from a finished video's card.", true);
