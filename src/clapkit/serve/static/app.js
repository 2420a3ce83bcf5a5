// clapkit sound search page: plain JavaScript, no external resources.
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("clapkit-token") || "";

function headers() {
  return token ? { Authorization: "Bearer " + token } : {};
}

function status(text, isError) {
  $("status").textContent = text;
  $("status").classList.toggle("error", Boolean(isError));
}

async function api(path, options) {
  const response = await fetch(path, { ...(options || {}), headers: { ...headers(), ...((options || {}).headers || {}) } });
  let body = null;
  try { body = await response.json(); } catch (e) { body = { error: response.statusText }; }
  if (response.status === 401) {
    $("token-form").hidden = false;
    throw new Error("this service needs a token");
  }
  if (!response.ok) throw new Error(body && body.error ? body.error : "request failed (" + response.status + ")");
  return body;
}

function seconds(value) {
  if (value === null || value === undefined) return "";
  return value < 60 ? value.toFixed(1) + " s" : Math.floor(value / 60) + ":" + String(Math.round(value % 60)).padStart(2, "0");
}

function render(hits, what) {
  const list = $("results");
  list.replaceChildren();
  const template = $("hit-template");
  for (const hit of hits) {
    const item = template.content.firstElementChild.cloneNode(true);
    item.dataset.id = hit.id;
    item.querySelector(".score").textContent = hit.score.toFixed(3);
    item.querySelector(".name").textContent = hit.path || hit.name;
    item.querySelector(".duration").textContent = seconds(hit.duration);
    if (hit.start !== undefined && hit.start !== null) {
      item.querySelector(".span").textContent = "best at " + seconds(hit.start) + "–" + seconds(hit.end);
    }
    if (hit.tags) {
      item.querySelector(".tags").textContent = hit.tags.map((t) => t.label + " " + t.score.toFixed(2)).join(" · ");
    }
    const audio = item.querySelector("audio");
    audio.src = "/files/" + hit.id + (token ? "?token=" + encodeURIComponent(token) : "");
    if (hit.start) {
      audio.addEventListener("loadedmetadata", () => { audio.currentTime = hit.start; }, { once: true });
    }
    item.querySelector(".more-like-this").addEventListener("click", () => similar(hit));
    list.appendChild(item);
  }
  status(hits.length ? hits.length + " result(s) " + what : "no results " + what);
}

async function search(event) {
  if (event) event.preventDefault();
  const q = $("q").value.trim();
  if (!q && !$("tag").value) return;
  status("searching…");
  try {
    const params = { top: $("top").value };
    if (q) params.q = q;
    if ($("tag").value) params.tag = $("tag").value;
    const body = await api("/search?" + new URLSearchParams(params));
    render(body.hits, (q ? "for “" + q + "”" : "") + ($("tag").value ? " tagged " + $("tag").value : ""));
  } catch (e) { status(e.message, true); }
}

async function similar(hit) {
  status("finding sounds like " + hit.name + "…");
  try {
    const body = await api("/similar/" + hit.id + "?" + new URLSearchParams({ top: $("top").value }));
    render(body.hits, "like " + hit.name);
  } catch (e) { status(e.message, true); }
}

async function upload() {
  const file = $("upload").files[0];
  if (!file) return;
  status("embedding " + file.name + "…");
  const form = new FormData();
  form.append("file", file);
  try {
    const body = await api("/search/audio?" + new URLSearchParams({ top: $("top").value }), { method: "POST", body: form });
    render(body.hits, "like " + file.name);
  } catch (e) { status(e.message, true); }
}

async function info() {
  try {
    const body = await api("/info");
    $("info").textContent = body.files + " sounds · model " + body.model + " · " + body.index + " search" +
      (body.segments ? " · per segment" : "") + (body.tags.length ? " · " + body.tags.length + " tags" : "");
    $("token-form").hidden = true;
    const tags = $("tag");
    tags.replaceChildren(tags.options[0]);
    for (const label of body.tags) {
      const option = document.createElement("option");
      option.value = option.textContent = label;
      tags.appendChild(option);
    }
    tags.hidden = body.tags.length === 0;
  } catch (e) { $("info").textContent = e.message; }
}

$("search-form").addEventListener("submit", search);
$("tag").addEventListener("change", () => search());
$("upload").addEventListener("change", upload);
$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("clapkit-token", token);
  info();
});
info();
