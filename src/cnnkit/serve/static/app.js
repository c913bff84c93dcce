// cnnkit faces: the web page. Plain JS, no build step, no CDN. The key lives in sessionStorage
// and is sent only as "Authorization: Bearer"; thumbnails are fetched with it and shown as blob URLs.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { key: sessionStorage.getItem("cnnkit-key") || "", gallery: null, cursor: null, thumbs: false, urls: [],
                chips: [] };

function say(text, error = false) {
  const div = document.createElement("div");
  div.className = "msg" + (error ? " error" : "");
  div.textContent = text;
  $("status").appendChild(div);
  setTimeout(() => div.remove(), error ? 8000 : 4000);
}

async function api(method, path, body) {
  const headers = {};
  if (state.key) headers["Authorization"] = "Bearer " + state.key;
  if (body && !(body instanceof FormData)) { headers["Content-Type"] = "application/json"; body = JSON.stringify(body); }
  const resp = await fetch(path, { method, headers, body });
  const type = resp.headers.get("content-type") || "";
  if (!resp.ok) {
    let problem = { title: resp.statusText, detail: "", code: String(resp.status) };
    if (type.includes("json")) problem = await resp.json();
    const err = new Error(`${problem.title}: ${problem.detail} (${problem.code})`);
    err.status = resp.status; err.problem = problem;
    throw err;
  }
  if (resp.status === 204) return null;
  if (type.includes("json")) return resp.json();
  return resp.blob();
}

async function signIn(key) {
  state.key = key.trim();
  try {
    await api("GET", "/v1/galleries");
  } catch (e) {
    state.key = "";
    sessionStorage.removeItem("cnnkit-key");
    say(e.message, true);
    return;
  }
  sessionStorage.setItem("cnnkit-key", state.key);
  $("signin-panel").hidden = true;
  $("main").hidden = false;
  $("signout").hidden = false;
  $("who").textContent = state.key ? "signed in with key " + state.key.split("_")[1] : "no keys on this server (local only)";
  await loadGalleries();
}

async function loadGalleries(select) {
  const { galleries } = await api("GET", "/v1/galleries");
  const sel = $("gallery");
  sel.innerHTML = "";
  for (const g of galleries) sel.add(new Option(g, g));
  if (select) sel.value = select;
  state.gallery = sel.value || null;
  await showGallery();
}

async function showGallery() {
  state.gallery = $("gallery").value || null;
  $("people").innerHTML = "";
  $("result").hidden = true;
  if (!state.gallery) { $("decision").textContent = "No gallery yet: create one."; return; }
  const g = await api("GET", `/v1/galleries/${state.gallery}`);
  state.thumbs = g.thumbnails;
  const info = await api("GET", `/v1/info?gallery=${encodeURIComponent(state.gallery)}`);
  const source = { calibrated: "calibrated for this gallery (cnnkit face calibrate)",
                   gallery: "estimated from this gallery's own people (stricter as the gallery grows)",
                   default: "the encoder's default (fewer than 10 people, or no stricter estimate)",
                   explicit: "set explicitly" }[info.threshold_source] || info.threshold_source;
  $("decision").textContent = `Same person when distance ≤ ${info.threshold.toFixed(3)} — ${source}; ` +
    `method: ${info.method}; encoder ${info.encoder_tag}. No liveness check.`;
  $("decision").dataset.threshold = info.threshold;
  $("decision").dataset.source = info.threshold_source;
  state.cursor = null;
  await loadPeople(true);
  if (location.hash === "#unknown") await loadUnknown();
}

async function loadPeople(reset) {
  if (reset) { state.urls.forEach(URL.revokeObjectURL); state.urls = []; $("people").innerHTML = ""; }
  let path = `/v1/galleries/${state.gallery}/subjects?limit=50`;
  if (state.cursor) path += `&cursor=${encodeURIComponent(state.cursor)}`;
  const page = await api("GET", path);
  for (const s of page.subjects) $("people").appendChild(personItem(s));
  state.cursor = page.next_cursor;
  $("more").hidden = !state.cursor;
  $("people-count").textContent = `(${$("people").children.length}${state.cursor ? "+" : ""})`;
}

function personItem(s) {
  const li = document.createElement("li");
  li.dataset.name = s.name;
  const pic = document.createElement("div");
  pic.className = "nothumb";
  pic.textContent = "no thumbnail";
  li.appendChild(pic);
  if (state.thumbs) {
    api("GET", `/v1/galleries/${state.gallery}/subjects/${encodeURIComponent(s.name)}/thumbnail`).then((blob) => {
      const img = document.createElement("img");
      img.alt = s.name;
      img.src = URL.createObjectURL(blob);
      state.urls.push(img.src);
      pic.replaceWith(img);
    }).catch(() => {});
  }
  const name = document.createElement("div");
  name.className = "name";
  name.textContent = s.name;
  const count = document.createElement("div");
  count.textContent = `${s.faces} photo${s.faces === 1 ? "" : "s"}`;
  const del = document.createElement("button");
  del.className = "danger";
  del.textContent = "Delete";
  del.onclick = async () => {
    if (!confirm(`Delete ${s.name} and every stored embedding and thumbnail of theirs?`)) return;
    try {
      await api("DELETE", `/v1/galleries/${state.gallery}/subjects/${encodeURIComponent(s.name)}`);
      li.remove();
      say(`${s.name} deleted`);
      await showGallery();
    } catch (e) { say(e.message, true); }
  };
  li.append(name, count, del);
  return li;
}

// -- the "Unknown faces" page (#unknown): faces identify named nobody, grouped by person ----------
function showView() {
  const unknown = location.hash === "#unknown";
  document.querySelectorAll(".view-gallery").forEach((el) => { el.hidden = unknown; });
  document.querySelectorAll(".view-unknown").forEach((el) => { el.hidden = !unknown; });
  $("nav-gallery").classList.toggle("current", !unknown);
  $("nav-unknown").classList.toggle("current", unknown);
  if (unknown && state.gallery) loadUnknown().catch((e) => say(e.message, true));
}

async function loadUnknown() {
  state.chips.forEach(URL.revokeObjectURL);
  state.chips = [];
  $("clusters").innerHTML = "";
  const u = await api("GET", `/v1/galleries/${state.gallery}/unknown`);
  const source = { verification: "the encoder's same-person threshold: too few faces to estimate a stricter one",
                   collection: "estimated from these faces", gallery: "estimated from this gallery's people",
                   given: "given" }[u.threshold_source] || u.threshold_source;
  $("unknown-note").textContent = (u.capture
    ? `Faces that identify named nobody (kept ${u.retention_days} days), grouped by person: ` +
      `distance ≤ ${u.threshold.toFixed(3)} (${source}).`
    : "Capture is off: start the server with --capture-unknown to keep the faces identify names nobody.") +
    " Name a group once to enroll every face in it.";
  const groups = [...u.clusters, ...u.known.map((k) => ({ faces: k.faces, size: k.faces.length, known: k.name }))];
  for (const c of groups) $("clusters").appendChild(clusterItem(c));
  $("unknown-empty").hidden = groups.length > 0;
  $("unknown-count").textContent = `(${u.clusters.length})`;
}

const CHIPS_SHOWN = 12;

function clusterItem(c) {
  const li = document.createElement("li");
  li.className = "cluster";
  if (c.id) li.dataset.id = c.id;
  const chips = document.createElement("div");
  chips.className = "chips";
  for (const f of c.faces.slice(0, CHIPS_SHOWN)) {
    const img = document.createElement("img");
    img.alt = `unknown face ${f.id}, seen ${f.seen_at}`;
    img.title = `seen ${f.seen_at}`;
    chips.appendChild(img);
    api("GET", `/v1/galleries/${state.gallery}/unknown/faces/${f.id}/chip`).then((blob) => {
      img.src = URL.createObjectURL(blob);
      state.chips.push(img.src);
    }).catch(() => {});
  }
  if (c.faces.length > CHIPS_SHOWN) {
    const more = document.createElement("span");
    more.className = "more";
    more.textContent = `+${c.faces.length - CHIPS_SHOWN}`;
    chips.appendChild(more);
  }
  const about = document.createElement("div");
  about.className = "about";
  about.textContent = `${c.size} face${c.size === 1 ? "" : "s"}` + (c.known ? `, now matching ${c.known}` : "");
  const form = document.createElement("form");
  form.className = "name-form";
  const input = document.createElement("input");
  input.placeholder = "name";
  input.required = true;
  input.value = c.known || "";
  input.setAttribute("aria-label", "name of this person");
  const button = document.createElement("button");
  button.type = "submit";
  button.textContent = "Name and enroll";
  form.append(input, button);
  form.onsubmit = async (e) => {
    e.preventDefault();
    const name = input.value.trim();
    if (!name) { say("type the person's name first", true); return; }
    button.disabled = true;
    try {
      const r = await api("POST", `/v1/galleries/${state.gallery}/unknown/name`, { name, faces: c.faces.map((f) => f.id) });
      li.remove();
      say(`${r.name}: ${r.enrolled} face${r.enrolled === 1 ? "" : "s"} enrolled`);
      await showGallery();
    } catch (err) {
      say(err.message, true);
      button.disabled = false;
      if (err.status === 409) await loadUnknown().catch(() => {});
    }
  };
  li.append(chips, about, form);
  return li;
}

async function enroll(blob, filename) {
  const name = $("enroll-name").value.trim();
  if (!name) { say("type the person's name first", true); return; }
  const form = new FormData();
  form.append("image", blob, filename);
  form.append("face", $("enroll-largest").checked ? "largest" : "single");
  try {
    const r = await api("POST", `/v1/galleries/${state.gallery}/subjects/${encodeURIComponent(name)}/faces`, form);
    say(r.enrolled ? `${name} enrolled` : `${name}: ${r.detail}`);
    await showGallery();
  } catch (e) { say(e.message, true); }
}

async function identify(blob, filename) {
  const form = new FormData();
  form.append("image", blob, filename);
  let r;
  try { r = await api("POST", `/v1/galleries/${state.gallery}/identify`, form); }
  catch (e) { say(e.message, true); return; }
  const img = $("photo");
  if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(blob);
  await img.decode().catch(() => {});
  const stage = $("stage");
  stage.querySelectorAll(".box").forEach((b) => b.remove());
  const list = $("faces");
  list.innerHTML = "";
  // A browser may not display every format the server reads (e.g. PGM): fall back to the server's size.
  const w = img.naturalWidth || r.width, h = img.naturalHeight || r.height;
  if (!img.naturalWidth) { img.style.width = "320px"; img.style.height = `${320 * r.height / r.width}px`; }
  const scale = (img.clientWidth || 320) / (w || 1);
  r.faces.forEach((f, i) => {
    const [x1, y1, x2, y2] = f.box.map((v) => v * scale);
    const box = document.createElement("div");
    box.className = "box" + (f.name ? "" : " unknown");
    Object.assign(box.style, { left: `${x1}px`, top: `${y1}px`, width: `${x2 - x1}px`, height: `${y2 - y1}px` });
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = f.name || "unknown";
    box.appendChild(label);
    stage.appendChild(box);
    const li = document.createElement("li");
    const best = f.candidates[0];
    li.textContent = `face ${i + 1}: ${f.name || "unknown"}` +
      (best ? ` (nearest ${best.name} at ${best.distance.toFixed(3)}, threshold ${r.threshold.toFixed(3)})` : "");
    list.appendChild(li);
  });
  if (!r.faces.length) list.innerHTML = "<li>no face found</li>";
  $("result").hidden = false;
}

let stream = null;
async function startCamera() {
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (e) { say("no camera: " + e.message, true); return; }
  $("camera").srcObject = stream;
  $("camera").hidden = $("camera-enroll").hidden = $("camera-identify").hidden = false;
}

function capture() {
  const video = $("camera");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
}

window.addEventListener("DOMContentLoaded", () => {
  $("signin-form").onsubmit = (e) => { e.preventDefault(); signIn($("key").value); };
  $("signout").onclick = () => { sessionStorage.removeItem("cnnkit-key"); location.reload(); };
  $("gallery").onchange = () => showGallery().catch((e) => say(e.message, true));
  $("more").onclick = () => loadPeople(false).catch((e) => say(e.message, true));
  $("create-form").onsubmit = async (e) => {
    e.preventDefault();
    const name = $("new-gallery").value.trim();
    try {
      await api("POST", "/v1/galleries", { name, thumbnails: $("new-thumbs").checked });
      say(`gallery ${name} created`);
      $("new-gallery").value = "";
      await loadGalleries(name);
    } catch (err) { say(err.message, true); }
  };
  $("enroll-form").onsubmit = (e) => {
    e.preventDefault();
    const file = $("enroll-file").files[0];
    if (!file) { say("choose a photo first", true); return; }
    enroll(file, file.name);
  };
  $("identify-form").onsubmit = (e) => {
    e.preventDefault();
    const file = $("identify-file").files[0];
    if (!file) { say("choose a photo first", true); return; }
    identify(file, file.name);
  };
  window.addEventListener("hashchange", showView);
  showView();
  $("camera-start").onclick = startCamera;
  $("camera-enroll").onclick = async () => enroll(await capture(), "webcam.jpg");
  $("camera-identify").onclick = async () => identify(await capture(), "webcam.jpg");
  // A server without keys (loopback only) needs no sign-in; otherwise reuse this tab's key.
  fetch("/v1/galleries").then((r) => { if (r.ok || state.key) signIn(state.key); });
});
