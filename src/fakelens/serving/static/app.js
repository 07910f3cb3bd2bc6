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
  const { trained_on: trainedOn, measured, weak_on: weakOn } = card.summary;
  info.textContent = `Model ${card.name}, trained on ${trainedOn}. ` +
    measured.map((line) => `${line}. `).join("") +
    `"AI" when the probability is at least ${Math.round(card.threshold * 100)}%.`;
  const weak = document.getElementById("model-weak");
  weak.textContent = `Weak on: ${weakOn.join("; ")}.`;
  weak.hidden = weakOn.length === 0;
}

// `message` about the file `name`, naming it once (a server's detail may name it already).
function named(name, message) {
  return message.startsWith(`${name}: `) ? message : `${name}: ${message}`;
}

function addResultItem(file) {
  const item = document.getElementById("result-template").content.firstElementChild.cloneNode(true);
  const thumb = item.querySelector(".thumb");
  thumb.src = URL.createObjectURL(file);
  thumb.alt = `Thumbnail of ${file.name}`;
  // The browser cannot show it (not an image, or a format it lacks): an empty tile, no broken icon.
  thumb.addEventListener("error", () => {
    URL.revokeObjectURL(thumb.src);
    const placeholder = document.createElement("div");
    placeholder.className = "thumb placeholder";
    placeholder.textContent = "No preview";
    thumb.replaceWith(placeholder);
  });
  item.querySelector(".name").textContent = file.name;
  item.querySelector(".verdict").textContent = "Judging…";
  document.getElementById("results").append(item);  // in the order the files were picked
  document.getElementById("clear").hidden = false;
  return item;
}

function showVerdict(item, record) {
  const verdict = item.querySelector(".verdict");
  const bar = item.querySelector(".bar");
  if (record.error) {
    showError(item, named(record.path, record.error));
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

// Fetched once, on the first click; later clicks hide and show it again.
async function toggleHeatmap(file, item) {
  const figure = item.querySelector(".heatmap");
  const image = figure.querySelector("img");
  if (image.hasAttribute("src")) {
    showHeatmap(item, figure.hidden);
    return;
  }
  const button = item.querySelector(".why");
  button.disabled = true;
  button.textContent = "Computing heatmap…";
  const form = new FormData();
  form.append("files", file, file.name);
  try {
    const response = await fetch("/v1/explain", { method: "POST", body: form, headers: authHeaders() });
    const body = await response.json().catch(() => ({}));
    if (!body.heatmap_png) throw new Error(body.detail || body.result?.error || `status ${response.status}`);
    image.src = `data:image/png;base64,${body.heatmap_png}`;
    image.alt = `Heatmap of ${file.name}: the regions that raised the AI score`;
    button.disabled = false;
    showHeatmap(item, true);
  } catch (error) {
    button.textContent = `No heatmap: ${error.message}`;
  }
}

function showHeatmap(item, shown) {
  item.querySelector(".heatmap").hidden = !shown;
  item.classList.toggle("explained", shown);
  const button = item.querySelector(".why");
  button.textContent = shown ? "Hide heatmap" : "Show heatmap";
  button.setAttribute("aria-expanded", String(shown));
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
        button.addEventListener("click", () => toggleHeatmap(file, item));
      }
    } else {
      showError(item, named(file.name, body.detail || `the server answered ${response.status}`));
      if (response.status === 401) document.getElementById("key-form").hidden = false;
    }
  } catch (error) {
    showError(item, named(file.name, `could not reach the server (${error.message})`));
  }
  showStatus();
}

const plural = (count) => `${count} image${count === 1 ? "" : "s"}`;

// The summary of every result on the page, counted from what each shows.
function showStatus() {
  const results = document.getElementById("results");
  const pending = results.querySelectorAll(".result:not([data-label])").length;
  const failed = results.querySelectorAll(".result[data-label=error]").length;
  const judged = results.querySelectorAll(".result[data-label]").length - failed;
  const status = document.getElementById("status");
  if (pending) status.textContent = `Judging ${plural(pending)}…`;
  else if (judged + failed === 0) status.textContent = "";
  else status.textContent = `Done: ${plural(judged)} judged` + (failed ? `, ${failed} could not be judged.` : ".");
}

async function judgeAll(files) {
  const queue = Array.from(files, (file) => [file, addResultItem(file)]);
  showStatus();
  const worker = async () => {
    while (queue.length) {
      const [file, item] = queue.shift();
      if (item.isConnected) await judge(file, item);  // not if cleared meanwhile
    }
  };
  await Promise.all(Array.from({ length: PARALLEL_UPLOADS }, worker));
}

function clearResults() {
  const results = document.getElementById("results");
  for (const thumb of results.querySelectorAll("img.thumb")) URL.revokeObjectURL(thumb.src);
  results.replaceChildren();
  document.getElementById("clear").hidden = true;
  showStatus();
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
  document.getElementById("clear").addEventListener("click", clearResults);
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
