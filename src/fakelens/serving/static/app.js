// The fakelens page: send each chosen image to /v1/predict and show its verdict.
"use strict";

const PARALLEL_UPLOADS = 4;
const state = { apiKey: sessionStorage.getItem("fakelens-api-key") || "" };

function authHeaders() {
  return state.apiKey ? { Authorization: `Bearer ${state.apiKey}` } : {};
}

async function loadModelInfo() {
  const info = document.getElementById("model-info");
  const response = await fetch("/v1/model", { headers: authHeaders() });
  if (response.status === 401) {
    document.getElementById("key-form").hidden = false;
    info.textContent = "This server needs an API key.";
    return;
  }
  if (!response.ok) {
    info.textContent = `The model is not ready (${response.status}); reload in a moment.`;
    return;
  }
  const card = await response.json();
  const accuracy = card.metrics?.test?.accuracy;
  info.textContent = `Model ${card.name}` +
    (accuracy ? `, ${(accuracy * 100).toFixed(1)}% accurate on the CIFAKE test set` : "") +
    `; "AI" when the probability is at least ${Math.round(card.threshold * 100)}%.`;
}

function addResultItem(file) {
  const item = document.getElementById("result-template").content.firstElementChild.cloneNode(true);
  const thumb = item.querySelector(".thumb");
  thumb.src = URL.createObjectURL(file);
  thumb.alt = `Thumbnail of ${file.name}`;
  // The browser cannot show it (not an image, or a format it lacks): an empty tile, no broken icon.
  thumb.addEventListener("error", () => {
    const placeholder = document.createElement("div");
    placeholder.className = "thumb placeholder";
    placeholder.textContent = "No preview";
    thumb.replaceWith(placeholder);
  });
  item.querySelector(".name").textContent = file.name;
  item.querySelector(".verdict").textContent = "Judging…";
  document.getElementById("results").prepend(item);
  return item;
}

function showVerdict(item, record) {
  const verdict = item.querySelector(".verdict");
  const bar = item.querySelector(".bar");
  if (record.error) {
    showError(item, `${record.path}: ${record.error}`);
    return;
  }
  const percent = Math.round(record.ai_probability * 100);
  verdict.textContent = record.label === "ai"
    ? `Likely AI-generated (${percent}% AI)` : `Likely a real photo (${percent}% AI)`;
  verdict.className = `verdict ${record.label}`;
  item.dataset.label = record.label;
  bar.classList.toggle("ai", record.label === "ai");
  bar.setAttribute("aria-valuenow", String(percent));
  bar.setAttribute("aria-label", `Probability AI-generated: ${percent}%`);
  bar.firstElementChild.style.width = `${percent}%`;
  showDeclared(item, record.declared);
  showEvidence(item, record.evidence || []);
}

const DECLARED = { ai: "AI-generated", real: "a camera capture" };

// What the file says about how it was made, beside the pixel score (never part of it).
function showDeclared(item, declared) {
  const line = item.querySelector(".declared");
  line.hidden = !declared;
  if (!declared) return;
  const split = declared.indexOf(": ");
  const direction = declared.slice(0, split);
  line.textContent = `Declared in the file: ${DECLARED[direction] || direction} — ${declared.slice(split + 2)}`;
  line.className = `declared ${direction}`;
}

const DIRECTION = { ai: "points to AI", real: "points to a real photo", unknown: "says nothing either way" };

function showEvidence(item, evidence) {
  const details = item.querySelector(".evidence");
  const list = details.querySelector("ul");
  list.replaceChildren(...evidence.map((finding) => {
    const entry = document.createElement("li");
    entry.className = `finding ${finding.points_to}`;
    const strength = finding.strength === "none" ? "" : `, ${finding.strength}`;
    entry.textContent = `${finding.kind} ${finding.key}: ${finding.value} (${DIRECTION[finding.points_to]}${strength})`;
    return entry;
  }));
  details.querySelector("summary").textContent = `Metadata evidence (${evidence.length})`;
  details.hidden = evidence.length === 0;
}

async function showHeatmap(file, item) {
  const button = item.querySelector(".why");
  button.disabled = true;
  button.textContent = "Computing heatmap…";
  const form = new FormData();
  form.append("files", file, file.name);
  try {
    const response = await fetch("/v1/explain", { method: "POST", body: form, headers: authHeaders() });
    const body = await response.json().catch(() => ({}));
    if (!body.heatmap_png) throw new Error(body.detail || body.result?.error || `status ${response.status}`);
    const figure = item.querySelector(".heatmap");
    const image = figure.querySelector("img");
    image.src = `data:image/png;base64,${body.heatmap_png}`;
    image.alt = `Heatmap of ${file.name}: the regions that raised the AI score`;
    figure.hidden = false;
    button.hidden = true;
    item.classList.add("explained");
  } catch (error) {
    button.textContent = `No heatmap: ${error.message}`;
  }
}

function showError(item, message) {
  item.dataset.label = "error";
  item.querySelector(".verdict").textContent = "Not judged";
  item.querySelector(".bar").hidden = true;
  const error = item.querySelector(".error");
  error.textContent = message;
  error.hidden = false;
}

async function judge(file, item) {
  const form = new FormData();
  form.append("files", file, file.name);
  try {
    const response = await fetch("/v1/predict?evidence=true", {
      method: "POST", body: form, headers: authHeaders(),
    });
    const body = await response.json().catch(() => ({}));
    if (body.results) {
      showVerdict(item, body.results[0]);
      if (!body.results[0].error) {
        const button = item.querySelector(".why");
        button.hidden = false;
        button.addEventListener("click", () => showHeatmap(file, item), { once: true });
      }
    } else {
      showError(item, `${file.name}: ${body.detail || `the server answered ${response.status}`}`);
      if (response.status === 401) document.getElementById("key-form").hidden = false;
    }
  } catch (error) {
    showError(item, `${file.name}: could not reach the server (${error.message})`);
  }
}

async function judgeAll(files) {
  const status = document.getElementById("status");
  const queue = Array.from(files, (file) => [file, addResultItem(file)]);
  const count = `${queue.length} image${queue.length === 1 ? "" : "s"}`;
  status.textContent = `Judging ${count}…`;
  const worker = async () => {
    while (queue.length) await judge(...queue.shift());
  };
  await Promise.all(Array.from({ length: PARALLEL_UPLOADS }, worker));
  status.textContent = `Done: ${count} judged.`;
}

function setUp() {
  const zone = document.getElementById("drop-zone");
  const input = document.getElementById("file-input");
  input.addEventListener("change", () => { if (input.files.length) judgeAll(input.files); input.value = ""; });
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("dragging"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (event.dataTransfer.files.length) judgeAll(event.dataTransfer.files);
  });
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.apiKey = document.getElementById("api-key").value.trim();
    sessionStorage.setItem("fakelens-api-key", state.apiKey);
    document.getElementById("key-form").hidden = true;
    loadModelInfo();
  });
  loadModelInfo();
}

document.addEventListener("DOMContentLoaded", setUp);
