// The feedback coach page: analyze sentences, stream the constructive rewrite. Plain JavaScript.
"use strict";

const KEY_STORE = "takeoff-api-key";
const ICONS = { constructive: "✓", critical: "⚠" };
const $ = (selector) => document.querySelector(selector);

const ui = {
  form: $("#feedback-form"),
  feedback: $("#feedback"),
  context: $("#context"),
  apiKey: $("#api-key"),
  count: $("#feedback-count"),
  analyze: $("#analyze"),
  improve: $("#improve"),
  status: $("#status"),
  error: $("#error"),
  verdict: $("#verdict"),
  result: $("#result"),
  improved: $("#improved"),
  warnings: $("#warnings"),
  copy: $("#copy"),
  copyStatus: $("#copy-status"),
};
const maxChars = Number(ui.feedback.dataset.maxChars);

// ---- talking to the server -------------------------------------------------------------------

class ApiError extends Error {}

function headers() {
  const result = { "Content-Type": "application/json" };
  const key = ui.apiKey.value.trim();
  if (key) result.Authorization = `Bearer ${key}`;
  return result;
}

function body(extra) {
  return JSON.stringify({ text: ui.feedback.value, context: ui.context.value, ...extra });
}

// A sentence a person can act on, for each way a request can fail.
async function failure(response) {
  let message = "";
  try {
    message = (await response.json()).error.message;
  } catch (_) {
    message = response.statusText;
  }
  const retry = response.headers.get("Retry-After");
  switch (response.status) {
    case 429:
      return new ApiError(`The server is busy. Try again in ${retry || "a few"} seconds.`);
    case 413:
      return new ApiError(`Your feedback is too long: ${message}`);
    case 401:
      return new ApiError("The server needs an API key: open “API key” above and enter it.");
    case 503:
      return new ApiError(`The server is not ready yet: ${message}`);
    default:
      return new ApiError(`Error ${response.status}: ${message}`);
  }
}

async function post(path, extra) {
  let response;
  try {
    response = await fetch(path, { method: "POST", headers: headers(), body: body(extra) });
  } catch (_) {
    throw new ApiError("Could not reach the server. Is it running?");
  }
  if (!response.ok) throw await failure(response);
  return response;
}

// Server-sent events from a fetch body: calls onEvent(name, data) per event, as the spec parses
// them (CR, LF or CRLF line ends; one space after the colon dropped; data lines joined by "\n").
async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const event = { name: "message", data: [] };
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      // A CR at the very end may be the first half of a CRLF: keep it for the next chunk.
      const lines = (buffer + value).split(/\r\n|\r(?!$)|\n/);
      buffer = lines.pop();
      for (const line of lines) readLine(line, event, onEvent);
    }
  } finally {
    reader.cancel().catch(() => {});  // after an error event too: closing cancels the rewrite
  }
}

function readLine(line, event, onEvent) {
  if (line === "") {
    if (event.data.length) onEvent(event.name, event.data.join("\n"));
    event.name = "message";
    event.data = [];
    return;
  }
  const colon = line.indexOf(":");
  const field = colon < 0 ? line : line.slice(0, colon);
  let text = colon < 0 ? "" : line.slice(colon + 1);
  if (text.startsWith(" ")) text = text.slice(1);
  if (field === "data") event.data.push(text);
  else if (field === "event") event.name = text;
}

// ---- what the page shows ---------------------------------------------------------------------

function setBusy(message) {
  ui.analyze.disabled = ui.improve.disabled = Boolean(message);
  ui.status.textContent = message || "";
  ui.status.dataset.busy = String(Boolean(message));
  if (message) showError("");
}

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = !message;
}

function tag(sentence) {
  const element = document.createElement("span");
  element.className = "tag";
  const percent = Math.round(sentence.score * 100);
  element.append(`${ICONS[sentence.kind]} ${sentence.label} `);
  if (sentence.unsure) element.append("(unsure) ");
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = `${percent}%`;
  element.append(score);
  return element;
}

// The analyzed text as it was typed, each sentence highlighted and tagged with its label.
function showAnalysis(text, analysis) {
  const paragraph = document.createElement("p");
  paragraph.style.whiteSpace = "pre-wrap";
  let position = 0;
  for (const sentence of analysis.sentences) {
    paragraph.append(text.slice(position, sentence.start));
    const span = document.createElement("span");
    span.className = `sentence ${sentence.kind}`;
    span.dataset.label = sentence.label;
    span.dataset.kind = sentence.kind;
    span.dataset.unsure = String(Boolean(sentence.unsure));
    span.title = sentence.unsure
      ? `Unsure: this could read as constructive or as critical (${sentence.label}, ` +
        `score ${sentence.score.toFixed(2)}). ` +
        (sentence.kind === "critical" ? "Improve rewrites it in case." : "Improve keeps it as written.")
      : `${sentence.label} (${sentence.kind}), score ${sentence.score.toFixed(2)}`;
    span.append(sentence.text, tag(sentence));
    paragraph.append(span);
    position = sentence.end;
  }
  ui.result.replaceChildren(paragraph);
  const critical = analysis.sentences.filter((s) => s.kind === "critical").length;
  const total = analysis.sentences.length;
  ui.verdict.className = `verdict ${analysis.kind}`;
  ui.verdict.textContent = `${ICONS[analysis.kind]} ${analysis.kind}: ` +
    `${critical} of ${total} sentence${total === 1 ? "" : "s"} critical`;
}

// A critical sentence that no rewrite passed the checks for is kept as written: it is listed under
// the constructive version with the server's reason, so the writer knows it still needs their work.
function showWarnings(sentences) {
  const flagged = sentences.filter((s) => s.rewrite_warning);
  ui.warnings.replaceChildren(...flagged.map((sentence) => {
    const item = document.createElement("li");
    const quote = document.createElement("q");
    quote.textContent = sentence.rewrite ?? sentence.text;
    item.append(quote, ` ${sentence.rewrite_warning}`);
    return item;
  }));
  ui.warnings.hidden = flagged.length === 0;
}

// ---- actions ---------------------------------------------------------------------------------

async function analyze() {
  if (!checkInput()) return;
  const text = ui.feedback.value;
  setBusy("Analyzing…");
  try {
    const response = await post("/v1/feedback/analyze", {});
    showAnalysis(text, await response.json());
    ui.status.textContent = "";
  } catch (error) {
    fail(error);
  } finally {
    ui.analyze.disabled = ui.improve.disabled = false;
    ui.status.dataset.busy = "false";
  }
}

async function improve() {
  if (!checkInput()) return;
  const text = ui.feedback.value;
  setBusy("Improving…");
  ui.copy.disabled = true;
  ui.improved.textContent = "";
  ui.improved.setAttribute("aria-busy", "true");
  showWarnings([]);
  try {
    const response = await post("/v1/feedback/improve", { stream: true });
    let finished = false;
    await readEvents(response, (name, data) => {
      if (name === "message") ui.improved.textContent += data;
      else if (name === "error") throw new ApiError(JSON.parse(data).error.message);
      else if (name === "result") {
        const result = JSON.parse(data);
        ui.improved.textContent = result.text;
        showAnalysis(text, result);
        showWarnings(result.sentences);
        finished = true;
      }
    });
    if (!finished) throw new ApiError("The connection closed before the rewrite was finished.");
    ui.status.textContent = "";
    ui.copy.disabled = !ui.improved.textContent;
  } catch (error) {
    fail(error);
  } finally {
    ui.improved.setAttribute("aria-busy", "false");
    ui.analyze.disabled = ui.improve.disabled = false;
    ui.status.dataset.busy = "false";
  }
}

function fail(error) {
  ui.status.textContent = "";
  showError(error instanceof ApiError ? error.message : `Something went wrong: ${error}`);
}

function checkInput() {
  if (!ui.feedback.value.trim()) {
    showError("Write or paste some feedback first.");
    ui.feedback.focus();
    return false;
  }
  if (ui.feedback.value.length > maxChars) {
    showError(`Your feedback is too long: ${ui.feedback.value.length} characters, ` +
      `the limit is ${maxChars}.`);
    return false;
  }
  return true;
}

async function copyImproved() {
  const text = ui.improved.textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {
    // Outside a secure context (plain http on another host) the clipboard API is missing.
    const scratch = document.createElement("textarea");
    scratch.value = text;
    document.body.append(scratch);
    scratch.select();
    document.execCommand("copy");
    scratch.remove();
  }
  ui.copyStatus.textContent = "Copied.";
  setTimeout(() => { ui.copyStatus.textContent = ""; }, 2000);
}

function countCharacters() {
  const length = ui.feedback.value.length;
  ui.count.textContent = `${length} / ${maxChars} characters`;
  ui.count.classList.toggle("over", length > maxChars);
}

ui.apiKey.value = localStorage.getItem(KEY_STORE) || "";
ui.apiKey.addEventListener("change", () => localStorage.setItem(KEY_STORE, ui.apiKey.value.trim()));
ui.form.addEventListener("submit", (event) => { event.preventDefault(); analyze(); });
ui.improve.addEventListener("click", improve);
ui.copy.addEventListener("click", copyImproved);
ui.feedback.addEventListener("input", countCharacters);
ui.feedback.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    analyze();
  }
});
countCharacters();
