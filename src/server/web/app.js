// The page's behaviour: each panel calls the server's public API with the key typed into the page.
// Everything the server or a document returns is shown with textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let modelName = "";                                   // from GET /v1/models
const labels = ["positive", "negative", "neutral"];   // edited in the page

// Authorization header from the key field; the key lives only in that field (no storage).
function authHeaders(extra) {
  const h = Object.assign({}, extra || {});
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

// The API's error object as one line ("401 invalid_api_key: a valid API key is required ...").
async function errorText(res) {
  try {
    const body = await res.json();
    if (body && body.error) return `${res.status} ${body.error.code || body.error.type}: ${body.error.message}`;
  } catch (e) { /* not JSON: fall through */ }
  return `${res.status} ${res.statusText}`;
}

function showError(id, text) {
  const el = $(id);
  el.textContent = text || "";
  el.hidden = !text;
}

// ------------------------------------------------------------------------------------------ model
async function loadModel() {
  try {
    const res = await fetch("/v1/models", { headers: authHeaders() });
    if (!res.ok) { $("model").textContent = "model: (" + (await errorText(res)) + ")"; return; }
    const body = await res.json();
    modelName = body.data[0].id;
    $("model").textContent = "model: " + modelName;
  } catch (e) {
    $("model").textContent = "model: (server unreachable)";
  }
}

// ------------------------------------------------------------------------------------------ labels
function renderLabels() {
  const ul = $("labels");
  ul.replaceChildren();
  labels.forEach((l, i) => {
    const li = document.createElement("li");
    li.dataset.label = l;
    li.append(l);
    const x = document.createElement("button");
    x.type = "button";
    x.className = "remove";
    x.title = "remove " + l;
    x.textContent = "×";
    x.addEventListener("click", () => { labels.splice(i, 1); renderLabels(); });
    li.append(x);
    ul.append(li);
  });
}

function addLabel() {
  const input = $("label-new");
  const l = input.value.trim();
  if (l && !labels.includes(l)) labels.push(l);
  input.value = "";
  renderLabels();
}

// ------------------------------------------------------------------------------------------ classify
function renderBars(probabilities) {
  const bars = $("bars");
  bars.replaceChildren();
  for (const [label, p] of Object.entries(probabilities).sort((a, b) => b[1] - a[1])) {
    const row = document.createElement("div");
    row.className = "bar-row";
    row.dataset.label = label;
    row.dataset.probability = String(p);
    const name = document.createElement("span");
    name.textContent = label;
    const track = document.createElement("div");
    track.className = "bar-track";
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = (100 * p).toFixed(1) + "%";
    track.append(bar);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = (100 * p).toFixed(1) + "%";
    row.append(name, track, value);
    bars.append(row);
  }
}

async function classify() {
  showError("classify-error", "");
  if (!modelName) await loadModel();  // the key may have been typed after the page loaded
  const button = $("classify");
  button.disabled = true;
  const t0 = performance.now();
  try {
    const res = await fetch("/v1/classify", {
      method: "POST",
      headers: authHeaders({ "Content-Type": "application/json" }),
      body: JSON.stringify({ model: modelName, document: $("doc").value, labels: labels.slice() }),
    });
    if (!res.ok) { showError("classify-error", await errorText(res)); $("result").hidden = true; return; }
    const body = await res.json();
    const roundTrip = performance.now() - t0;
    $("result-label").textContent = body.label;
    $("classify-time").textContent =
      `${body.timings.total_ms.toFixed(1)} ms on the server, ${roundTrip.toFixed(1)} ms round trip`;
    renderBars(body.probabilities);
    $("result").hidden = false;
  } catch (e) {
    showError("classify-error", "request failed: " + e.message);
  } finally {
    button.disabled = false;
  }
}

// A dropped file replaces the document text.
function setUpDrop() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (file) $("doc").value = await file.text();
    else $("doc").value = e.dataTransfer.getData("text/plain");
  });
}

// ------------------------------------------------------------------------------------------ chat
const history = [];  // {role, content} of the conversation so far

function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text;
  $("chat-log").append(div);
  return div;
}

// Reads an SSE body ("data: {...}\n\n" events, then "data: [DONE]") and calls onEvent per JSON event.
async function readEvents(res, onEvent) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, end);
      buf = buf.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        onEvent(JSON.parse(data));
      }
    }
  }
}

async function sendChat() {
  showError("chat-error", "");
  if (!modelName) await loadModel();
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  const button = $("chat-send");
  button.disabled = true;
  history.push({ role: "user", content: text });
  addMessage("user", text);
  const bubble = addMessage("assistant", "");
  bubble.dataset.state = "streaming";
  let answer = "";
  try {
    const res = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: authHeaders({ "Content-Type": "application/json" }),
      body: JSON.stringify({ model: modelName, messages: history, stream: true,
                             max_tokens: Number($("chat-max").value) || 64,
                             temperature: Number($("chat-temp").value) }),
    });
    if (!res.ok) throw new Error(await errorText(res));
    await readEvents(res, (ev) => {
      // A failure after the stream began arrives as an error event.
      if (ev.error) throw new Error(`${ev.error.code || ev.error.type}: ${ev.error.message}`);
      const choice = ev.choices && ev.choices[0];
      if (choice && choice.delta && choice.delta.content) {
        answer += choice.delta.content;
        bubble.textContent = answer;
        bubble.dataset.chunks = String(Number(bubble.dataset.chunks || 0) + 1);
      }
      if (choice && choice.finish_reason) bubble.dataset.finish = choice.finish_reason;
    });
    history.push({ role: "assistant", content: answer });
    bubble.dataset.state = "done";
  } catch (e) {
    history.pop();  // the user turn without an answer would break role alternation
    bubble.dataset.state = "failed";
    showError("chat-error", e.message);
  } finally {
    button.disabled = false;
  }
}

// ------------------------------------------------------------------------------------------ metrics
// Prometheus text -> {name: total over its label sets}.
function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/);
    if (!m) continue;
    out[m[1]] = (out[m[1]] || 0) + Number(m[3]);
  }
  return out;
}

let lastTokens = null;  // {tokens, t} of the previous poll, for tokens/s

async function pollMetrics() {
  try {
    const res = await fetch("/metrics", { headers: authHeaders() });
    if (!res.ok) { showError("metrics-error", await errorText(res)); return; }
    showError("metrics-error", "");
    const m = parseMetrics(await res.text());
    const t = performance.now();
    const tokens = m.headroom_generation_tokens_total || 0;
    $("m-state").textContent = m.headroom_ready ? "ready" : "not ready";
    $("m-requests").textContent = String(m.headroom_requests_total || 0);
    $("m-tokens").textContent = String(tokens);
    if (lastTokens) {
      const dt = (t - lastTokens.t) / 1000;
      $("m-tps").textContent = dt > 0 ? ((tokens - lastTokens.tokens) / dt).toFixed(1) : "–";
    }
    lastTokens = { tokens, t };
    const total = m.headroom_kv_blocks_total || 0;
    const used = m.headroom_kv_blocks_used || 0;
    $("m-kv").textContent = total ? `${used} / ${total} blocks (${(100 * used / total).toFixed(0)}%)` : "–";
    $("m-queue").textContent = String(m.headroom_queue_length || 0);
    $("m-running").textContent = String(m.headroom_running_sequences || 0);
    $("m-updated").textContent = new Date().toLocaleTimeString();
  } catch (e) {
    showError("metrics-error", "server unreachable");
  }
}

// ------------------------------------------------------------------------------------------ start
document.addEventListener("DOMContentLoaded", () => {
  renderLabels();
  setUpDrop();
  $("label-add").addEventListener("click", addLabel);
  $("label-new").addEventListener("keydown", (e) => { if (e.key === "Enter") addLabel(); });
  $("classify").addEventListener("click", classify);
  $("chat-send").addEventListener("click", sendChat);
  $("chat-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); sendChat(); }
  });
  // A new key may unlock what the previous one could not read.
  $("api-key").addEventListener("change", () => { loadModel(); pollMetrics(); });
  loadModel();
  pollMetrics();
  setInterval(pollMetrics, 1000);
});
